"""Bad input raises a clear Python error naming the argument, what was expected and what was given."""
import numpy as np
import pytest

import trix
from trix import _C


@pytest.fixture
def w():
    return trix.pack_int8(np.ones((4, 10), np.int8))


def test_wrong_dtype(w):
    with pytest.raises(TypeError, match=r"matmul: argument 'x' must have dtype float32, got float64"):
        trix.matmul(np.zeros((2, 10)), w)
    with pytest.raises(TypeError, match=r"argument 'w' must have dtype int8, got int64"):
        trix.pack_int8(np.zeros((2, 3), np.int64))


def test_wrong_shape(w):
    with pytest.raises(ValueError, match=r"argument 'x' must have shape \[\*, 10\], got \[2, 11\]"):
        trix.matmul(np.zeros((2, 11), np.float32), w)
    with pytest.raises(ValueError, match=r"must have 2 dimensions"):
        _C.matmul(np.zeros(10, np.float32), w.data, w.cols, w.scales, np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"argument 'out' must have shape \[2, 4\], got \[2, 5\]"):
        trix.matmul(np.zeros((2, 10), np.float32), w, out=np.zeros((2, 5), np.float32))


def test_non_contiguous(w):
    x = np.zeros((10, 2), np.float32).T
    with pytest.raises(ValueError, match=r"argument 'x' must be C-contiguous"):
        trix.matmul(x, w)


def test_values_outside_ternary():
    with pytest.raises(ValueError, match=r"must hold only -1, 0 or 1, got 3 at \[1, 0\]"):
        trix.pack_int8(np.array([[0, 1], [3, 0]], np.int8))


def test_bad_scales_count():
    with pytest.raises(ValueError, match=r"'w.scales' must have 0, 1 or rows \(4\) entries, got 2"):
        trix.matmul(np.zeros((1, 10), np.float32), trix.PackedTernary(
            trix.pack_int8(np.ones((4, 10), np.int8)).data, 10, np.ones(2, np.float32)))


def test_bad_tile_index(w):
    up = trix.pack_int8(np.ones((8, 10), np.int8))
    down = trix.pack_int8(np.ones((20, 4), np.int8))
    x = np.zeros((1, 10), np.float32)
    with pytest.raises(ValueError, match=r"argument 'tile_idx' must hold tile ids in \[0, 2\) or -1, got 5"):
        trix.tiled_ffn(x, up, down, 2, np.array([[5]], np.int32))
    with pytest.raises(ValueError, match=r"argument 'activation' must be one of"):
        trix.tiled_ffn(x, up, down, 2, np.array([[0]], np.int32), activation="tanh")
    with pytest.raises(ValueError, match=r"argument 'down' must have tiles \* d = 20 rows, got 21"):
        trix.tiled_ffn(x, up, trix.pack_int8(np.ones((21, 4), np.int8)), 2, np.array([[0]], np.int32))


def test_bad_rule_and_k():
    with pytest.raises(ValueError, match=r"argument 'rule' must be 'absmean' or 'threshold', got 'median'"):
        trix.pack(np.zeros((2, 2), np.float32), rule="median")
    with pytest.raises(ValueError, match=r"argument 'k' must be in \[1, 3\], got 4"):
        trix.top_k(np.zeros((1, 3), np.float32), k=4)


def test_nan_weights_are_rejected():
    with pytest.raises(ValueError, match=r"argument 'w' must be finite"):
        trix.pack(np.array([[1.0, np.nan]], np.float32))


def test_read_only_input_is_accepted(w):
    x = np.ones((1, 10), np.float32)
    x.setflags(write=False)
    assert trix.matmul(x, w).shape == (1, 4)


def test_torch_wrong_device_or_dtype(w):
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"argument 'x' must have dtype float32, got bfloat16"):
        trix.matmul(torch.zeros(2, 10, dtype=torch.bfloat16), w)
    with pytest.raises(ValueError, match=r"must be C-contiguous"):
        trix.matmul(torch.zeros(10, 2).t(), w)


def test_missing_file(tmp_path):
    with pytest.raises(RuntimeError, match="cannot open"):
        trix.load(tmp_path / "absent.trix")


def test_import_is_quiet_and_light():
    import subprocess
    import sys

    code = "import sys, trix; assert 'torch' not in sys.modules, 'import trix loaded torch'; print(trix.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == trix.__version__
    assert out.stderr == ""
