"""The memory benchmark's data: trained-tile keys (trix.bench.trained_keys) and their loader."""
import json

import numpy as np
import pytest

pytest.importorskip("torch")

from trix.bench import trained_keys  # noqa: E402
from trix.bench.memory_compare import load_trained_keys  # noqa: E402


def test_trained_keys_are_the_tiles_signatures(tmp_path, one_torch_thread):
    text = tmp_path / "t.txt"
    text.write_text("to be or not to be, that is the question\n" * 40)
    out = tmp_path / "k.npz"
    assert trained_keys.main(["--out", str(out), "--tiles", "512", "--layers", "1", "--d", "256", "--steps", "2",
                              "--batch", "2", "--block", "16", "--data", str(text)]) == 0
    keys, meta = load_trained_keys(out)
    assert keys.shape == (512, 256) and keys.dtype == np.int8 and set(np.unique(keys)) <= {-1, 0, 1}
    assert meta["tiles"] == 512 and meta["steps"] == 2
    with np.load(out) as z:
        assert z["routed"].sum() == 2 * 2 * 16  # every token routed to one tile per step


def test_the_loader_refuses_wrong_keys_and_pickles(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, keys=np.zeros((4, 128), np.int8), meta=np.array(json.dumps({})))
    with pytest.raises(ValueError, match="int8 \\[N, 256\\]"):
        load_trained_keys(bad)
    np.savez(bad, keys=np.full((4, 256), 2, np.int8), meta=np.array(json.dumps({})))
    with pytest.raises(ValueError, match="-1, 0, 1"):
        load_trained_keys(bad)
    np.savez(bad, keys=np.array([{"a": 1}], dtype=object), meta=np.array(json.dumps({})))
    with pytest.raises(ValueError, match="pickle"):
        load_trained_keys(bad)


def test_markdown_marks_the_first_point_at_099_per_method():
    from trix.bench.memory_compare import markdown

    rows = [dict(queries="near", method=m, param=p, threads=t, qps=q, nq=10, nq_timed=10, recall1=r, recall10=r,
                 build_s=1.0, bytes_per_key=8.0)
            for m, p, r, q in (("a", 1, 0.98, 100), ("a", 2, 0.995, 50), ("a", 4, 0.9995, 20), ("b", 1, 0.999, 7))
            for t in (1, 2)]
    text = markdown(rows)
    assert "| a | **2** | **50** | 50 | 10 | **0.995** |" in text
    assert "| a | **4** | **20** |" in text and "| b | **1** | **7** |" in text
    assert "| a | 1 | 100 | 100 |" in text
