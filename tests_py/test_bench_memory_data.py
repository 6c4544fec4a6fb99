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
