"""Every `trix` subcommand given bad input (a missing file, a corrupt file, a wrong-type argument)
exits with status 2 and one line on stderr, never a traceback; checkpoints are read as data only."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from trix import train as T  # noqa: E402
from trix.cli import main  # noqa: E402


def fails_cleanly(capsys, argv, match=None):
    """main(argv) returns 2 (or argparse exits 2) with no traceback and, for our own errors, one line."""
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse: usage + one error line
        rc = e.code
        err = capsys.readouterr().err
        assert rc == 2 and "Traceback" not in err and "error:" in err, err
        return err
    err = capsys.readouterr().err
    assert rc == 2, (argv, rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    if match:
        assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def files(tmp_path):
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"\x80\x02\xff" * 100)
    text = tmp_path / "text.txt"
    text.write_text("the king and the queen.\n" * 50)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    wrong_type = tmp_path / "wrong.json"
    wrong_type.write_text(json.dumps({"iters": "many"}))
    return {"missing": str(tmp_path / "missing"), "corrupt": str(corrupt), "text": str(text),
            "bad_json": str(bad_json), "wrong_type": str(wrong_type), "dir": tmp_path}


def test_train(capsys, files):
    out = str(files["dir"] / "run")
    fails_cleanly(capsys, ["train", "--config", files["missing"]], "missing")
    fails_cleanly(capsys, ["train", "--config", files["bad_json"]])
    fails_cleanly(capsys, ["train", "--config", files["wrong_type"], "--data", files["text"], "--out", out,
                           "--no-progress"], "config field 'iters' must be of type int, got str 'many'")
    fails_cleanly(capsys, ["train", "--data", files["missing"]])
    fails_cleanly(capsys, ["train", "--data", files["corrupt"], "--out", out])
    fails_cleanly(capsys, ["train", "--iters", "abc"])
    fails_cleanly(capsys, ["train", "--model-factory", "no_such_module:fn", "--data", files["text"]], "cannot import")
    fails_cleanly(capsys, ["train", "--model-factory", "justaname", "--data", files["text"]], "registered name")
    # resuming from a corrupt checkpoint in --out
    (files["dir"] / "run").mkdir()
    (files["dir"] / "run" / "ckpt.pt").write_bytes(b"garbage")
    fails_cleanly(capsys, ["train", "--data", files["text"], "--out", out, "--iters", "1", "--no-progress"],
                  "not a readable checkpoint")


def test_generate(capsys, files, tmp_path):
    fails_cleanly(capsys, ["generate", files["missing"]], "checkpoint not found")
    fails_cleanly(capsys, ["generate", files["corrupt"]], "not a readable checkpoint")
    fails_cleanly(capsys, ["generate", files["text"], "-n", "abc"])
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    fails_cleanly(capsys, ["generate", str(foreign)], "missing 'train_config', 'model_config', 'model', 'vocab'")
    torch.save([1, 2, 3], foreign)
    fails_cleanly(capsys, ["generate", str(foreign)], "expected a dict")
    fails_cleanly(capsys, ["generate", files["text"], "--temperature", "-1"], "--temperature must be >= 0")


class _Boom:
    """Unpickling this runs code: weights_only=True must refuse it."""

    def __reduce__(self):
        return (Path("pwned").touch, ())


def test_checkpoints_are_data_not_code(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"train_config": {"model_factory": "trix.train:build_trix_lm"}, "model_config": {}, "model": {},
                "vocab": "ab", "payload": _Boom()}, evil)
    fails_cleanly(capsys, ["generate", str(evil)], "holds more than tensors and plain data")
    assert not (tmp_path / "pwned").exists()
    # a factory named in the file is looked up, never imported
    named = tmp_path / "named.pt"
    torch.save({"train_config": {"model_factory": "os:system"}, "model_config": {"command": "touch pwned"},
                "model": {}, "vocab": "ab"}, named)
    fails_cleanly(capsys, ["generate", str(named)], "unknown model factory 'os:system'")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(T.CheckpointError, match="unknown model factory"):
        T.load_checkpoint(named)


def _tiny_lm_checkpoint(path, factory_name):
    from trix.nn import TriXLM, TriXLMConfig

    mcfg = dict(vocab_size=5, block_size=8, n_layer=1, n_head=2, d_model=16, tiles=2)
    model = TriXLM(TriXLMConfig(**mcfg))
    torch.save({"train_config": {"model_factory": factory_name}, "model_config": mcfg, "model": model.state_dict(),
                "vocab": "abcd\n"}, path)
    return model


def test_old_checkpoints_name_the_default_factory(tmp_path, capsys):
    p = tmp_path / "old.pt"
    ref = _tiny_lm_checkpoint(p, "trix.train:build_trix_lm")
    model, chars, _ = T.load_checkpoint(p)
    assert chars == "abcd\n"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))
    assert main(["generate", str(p), "-n", "5", "--prompt", "ab"]) == 0
    assert capsys.readouterr().out.startswith("ab")


def test_malformed_checkpoints_name_what_is_wrong(tmp_path):
    p = tmp_path / "c.pt"
    ref = _tiny_lm_checkpoint(p, T.DEFAULT_FACTORY)
    ck = torch.load(p, weights_only=True)
    del ck["model"][next(iter(ck["model"]))]
    torch.save(ck, p)
    with pytest.raises(T.CheckpointError, match=r"weights do not fit its model_config \(missing"):
        T.load_checkpoint(p)
    ck["model"] = ref.state_dict()
    ck["model_config"]["no_such_field"] = 1
    torch.save(ck, p)
    with pytest.raises(T.CheckpointError, match=r"model_config does not build a model with 'trix_lm'"):
        T.load_checkpoint(p)
    ck["model_config"].pop("no_such_field")
    ck["vocab"] = 5
    torch.save(ck, p)
    with pytest.raises(T.CheckpointError, match=r"entry 'vocab' is a int, expected a str"):
        T.load_checkpoint(p)


def test_registered_factories(tmp_path):
    assert T.DEFAULT_FACTORY in T.model_factories()
    with pytest.raises(TypeError):
        T.register_model_factory("x", 3)
    with pytest.raises(ValueError, match="unknown model factory 'nope'"):
        T.resolve_factory("nope")
    assert T.resolve_factory("trix.train:build_trix_lm") is T.build_trix_lm


def test_validate(capsys, files):
    pytest.importorskip("matplotlib")
    out = str(files["dir"] / "v")
    fails_cleanly(capsys, ["validate", "--data", files["missing"], "--out", out, "--quick", "--no-progress"])
    fails_cleanly(capsys, ["validate", "--data", files["corrupt"], "--out", out, "--quick", "--no-progress"])
    fails_cleanly(capsys, ["validate", "--iters", "abc"])
    fails_cleanly(capsys, ["validate", "--stages", "nonsense", "--out", out, "--data", files["text"]])


def test_bench_and_demo(capsys, files):
    fails_cleanly(capsys, ["bench", "--quick", "--json", str(Path(files["missing"]) / "out.json")], "does not exist")
    fails_cleanly(capsys, ["bench", "--quick", "--memory", "--train"])
    fails_cleanly(capsys, ["bench", "--no-such-flag"])
    fails_cleanly(capsys, ["demo", "--dim", "-4"], "argument --dim must be >= 1")
    fails_cleanly(capsys, ["demo", "--tiles", "0"], "argument --tiles must be >= 1")
    fails_cleanly(capsys, ["demo", "--tiles", "abc"])


def test_spawned_workers_find_the_factories_registered_in_code():
    """A fresh interpreter (trix validate's worker processes) inherits the registrations through the
    environment, not through any file; without it the name is unknown."""
    import os
    import subprocess
    import sys

    import test_train  # registers its stand-in factory

    here = str(Path(test_train.__file__).parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    code = "from trix import train as T; print(T.resolve_factory('test_train:make_standin').__name__)"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "make_standin", r.stderr
    env.pop("TRIX_MODEL_FACTORIES")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "unknown model factory" in r.stderr
