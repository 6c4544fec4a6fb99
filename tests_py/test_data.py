"""trix.data: TinyShakespeare lookup order, sha256 check, split sizes, any UTF-8 file, clear errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trix import data as D


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No TRIX_DATA, an empty cache, no checkout data directory, no network."""
    monkeypatch.delenv("TRIX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(D, "checkout_data_path", lambda: tmp_path / "nowhere" / "input.txt")
    monkeypatch.setattr(D, "beside_checkout_paths", lambda: [])

    def offline(url, dest, timeout=30.0):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(D, "_download", offline)
    return tmp_path


def test_missing_data_gives_a_clear_message(isolated):
    with pytest.raises(D.DataError) as e:
        D.find_tinyshakespeare()
    msg = str(e.value)
    assert "TinyShakespeare not available" in msg and "--data" in msg and "TRIX_DATA" in msg
    assert "network unreachable" in msg and D.TINYSHAKESPEARE_SHA256 in msg


def test_wrong_checksum_is_rejected(isolated, monkeypatch):
    bad = isolated / "bad.txt"
    bad.write_text("not shakespeare\n" * 20)
    monkeypatch.setenv("TRIX_DATA", str(bad))
    with pytest.raises(D.DataError, match="does not match"):
        D.find_tinyshakespeare()


def test_download_is_verified_and_cached(isolated, monkeypatch):
    payload = b"pretend this is shakespeare\n" * 10
    monkeypatch.setattr(D, "TINYSHAKESPEARE_SHA256", __import__("hashlib").sha256(payload).hexdigest())
    calls = []

    def fake(url, dest, timeout=30.0):
        calls.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(payload)

    monkeypatch.setattr(D, "_download", fake)
    p = D.find_tinyshakespeare()
    assert p == isolated / "cache" / "trix" / "tinyshakespeare" / "input.txt" and calls == [D.TINYSHAKESPEARE_URL]
    assert D.find_tinyshakespeare() == p and len(calls) == 1  # second time from the cache


def test_corrupt_download_is_deleted(isolated, monkeypatch):
    def fake(url, dest, timeout=30.0):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"truncated")

    monkeypatch.setattr(D, "_download", fake)
    with pytest.raises(D.DataError, match="does not match"):
        D.find_tinyshakespeare()
    assert not (isolated / "cache" / "trix" / "tinyshakespeare" / "input.txt").exists()


def test_checkout_path_is_relative_to_the_package():
    p = D.checkout_data_path()
    pkg = Path(D.__file__).resolve().parent
    assert p == pkg.parent.parent.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


def test_any_utf8_file_builds_its_own_vocab(tmp_path):
    p = tmp_path / "t.txt"
    text = "héllo wörld\nΩmega 123!\n" * 20
    p.write_text(text, encoding="utf-8")
    ds = D.load_dataset(str(p))
    assert ds.vocab.chars == "".join(sorted(set(text)))
    assert len(ds.train) == int(0.9 * len(text)) and len(ds.train) + len(ds.val) == len(text)
    assert ds.vocab.decode(np.concatenate([ds.train, ds.val])) == text


def test_non_utf8_file_is_a_clear_error(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(D.DataError, match="not UTF-8"):
        D.load_dataset(str(p))
    with pytest.raises(D.DataError, match="not found"):
        D.load_dataset(str(tmp_path / "missing.txt"))


def test_tinyshakespeare_split_when_available():
    try:
        path = D.find_tinyshakespeare(download=False)
    except D.DataError:
        pytest.skip("TinyShakespeare not available offline here")
    ds = D.load_dataset(str(path))
    assert ds.vocab.size == 65
    assert (len(ds.train), len(ds.val)) == (1_003_854, 111_540)
    assert ds.sha256 == D.TINYSHAKESPEARE_SHA256


def test_windows_are_shifted_by_one():
    torch = pytest.importorskip("torch")
    ids = np.arange(100, dtype=np.int64)
    offs = D.batch_offsets(len(ids), 8, 5, torch.Generator().manual_seed(0))
    x, y = D.gather_windows(ids, offs, 8)
    assert x.shape == (5, 8) and torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(x[:, 0], offs)
    assert int(offs.max()) + 8 < len(ids)
    a = D.eval_offsets(len(ids), 8, 4, 3)
    b = D.eval_offsets(len(ids), 8, 4, 3)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_char_classes_cover_every_character():
    v = D.CharVocab("\n !',-.3:;?ABCXZabcz")
    got = dict(zip(v.chars, (D.CHAR_CLASSES[i] for i in D.class_ids(v))))
    assert got["\n"] == "newline" and got[" "] == "space" and got["3"] == "digit"
    assert got["A"] == "upper" and got["z"] == "lower" and got["!"] == "punct" and got["'"] == "punct"


def test_found_beside_a_checkout_holding_the_working_directory(isolated, monkeypatch):
    """An installed package cannot see its checkout; <ancestor of cwd>/shared/data/... is looked at."""
    monkeypatch.undo()  # the real lookup, with a fake tree: root/shared/data/... and root/repo/sub as cwd
    monkeypatch.delenv("TRIX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(isolated / "cache"))
    monkeypatch.setattr(D, "checkout_data_path", lambda: isolated / "nowhere" / "input.txt")
    monkeypatch.setattr(D, "TINYSHAKESPEARE_SHA256", D.sha256_of(Path(__file__)))
    target = isolated / "root" / "shared" / "data" / "tinyshakespeare" / "input.txt"
    target.parent.mkdir(parents=True)
    target.write_bytes(Path(__file__).read_bytes())
    work = isolated / "root" / "repo" / "sub"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert D.find_tinyshakespeare(download=False) == target.resolve()
