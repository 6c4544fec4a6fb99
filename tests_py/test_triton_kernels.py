"""trix.triton kernels against libtrix (trix.ops) and float64 torch: packing, the packed product and its
transpose, signatures, routing scores and top-k, on awkward sizes (1, 3, 17, 127, 129, 300, ...)."""
import pytest

from triton_env import DEVICE, tol, torch

import trix
from trix import ops as C
from trix.autograd import pack_weight
from trix.quant import QuantConfig
from trix.triton import ops as G

pytestmark = pytest.mark.triton


def codes(rows, cols, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-1, 2, (rows, cols), generator=g, dtype=torch.int8)


def on(t):
    return t.to(DEVICE)


def host(p):
    return C.PackedTernary(p.data.cpu(), p.cols, p.scales.cpu())


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 127), (5, 128), (7, 129), (2, 300), (33, 257)])
def test_pack_codes_gives_the_public_format_bytes(rows, cols):
    q = codes(rows, cols, rows * 1000 + cols)
    p = G.pack_codes(on(q))
    assert p.data.device.type == torch.device(DEVICE).type
    assert torch.equal(p.data.cpu(), C.pack_int8(q).data)
    assert torch.equal(C.unpack(host(p)), q)


@pytest.mark.parametrize("cfg", [QuantConfig(), QuantConfig(rule="threshold", threshold=0.02),
                                 QuantConfig(per_row=True)])
def test_pack_quantizes_like_the_cpu_path(cfg):
    w = torch.randn(9, 131, generator=torch.Generator().manual_seed(3)) * 0.05
    p, ref = G.pack(on(w), cfg), pack_weight(w, cfg)
    assert torch.equal(p.data.cpu(), ref.data)
    assert torch.equal(p.scales.cpu(), ref.scales)


@pytest.mark.parametrize("n,m,k,n_scales", [(1, 1, 1, 1), (1, 37, 300, 0), (3, 17, 128, 17),
                                            (17, 5, 129, 1), (33, 70, 257, 70)])
def test_matmul_float32_matches_float64_and_libtrix(n, m, k, n_scales):
    g = torch.Generator().manual_seed(n + m + k)
    q = codes(m, k, m + k)
    scales = torch.rand(n_scales, generator=g) + 0.5 if n_scales else None
    x = torch.randn(n, k, generator=g)
    y = G.matmul(on(x), G.pack_codes(on(q), None if scales is None else on(scales))).cpu()
    eff = q.double() * (scales.double()[:, None] if n_scales > 1 else (scales.double() if n_scales else 1.0))
    ref = x.double() @ eff.t()
    assert y.dtype == torch.float32 and y.shape == (n, m)
    assert (y.double() - ref).abs().max() <= 1e-5 * max(1.0, ref.abs().max())
    lib = C.matmul(x, C.pack_int8(q, scales))
    assert (y - lib).abs().max() <= 1e-5 * max(1.0, float(lib.abs().max()))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_matmul_low_precision_activations_accumulate_in_float32(dtype):
    g = torch.Generator().manual_seed(7)
    q, x = codes(19, 260, 8), torch.randn(5, 260, generator=g).to(dtype)
    y = G.matmul(on(x), G.pack_codes(on(q), on(torch.tensor([0.75])))).cpu()
    ref = (x.double() @ q.double().t()) * 0.75  # exact products of the rounded inputs
    assert y.dtype == dtype
    assert (y.double() - ref).abs().max() <= tol(dtype, float(ref.abs().max()))


@pytest.mark.parametrize("n,m,k,n_scales", [(1, 3, 129, 1), (3, 40, 70, 40), (20, 130, 33, 0)])
def test_matmul_t_is_the_transposed_product(n, m, k, n_scales):
    g = torch.Generator().manual_seed(n * m)
    q = codes(m, k, k)
    scales = torch.rand(n_scales, generator=g) + 0.5 if n_scales else None
    gy = torch.randn(n, m, generator=g)
    dx = G.matmul_t(on(gy), G.pack_codes(on(q), None if scales is None else on(scales))).cpu()
    eff = q.double() * (scales.double()[:, None] if n_scales > 1 else (scales.double() if n_scales else 1.0))
    ref = gy.double() @ eff
    assert dx.shape == (n, k)
    assert (dx.double() - ref).abs().max() <= 1e-5 * max(1.0, ref.abs().max())
    lib = C.matmul_t(gy, C.pack_int8(q, scales))
    assert (dx - lib).abs().max() <= 1e-5 * max(1.0, float(lib.abs().max()))
    bf = G.matmul_t(on(gy.to(torch.bfloat16)), G.pack_codes(on(q), None if scales is None else on(scales))).cpu()
    ref_bf = gy.to(torch.bfloat16).double() @ eff
    tol_bf = tol(torch.bfloat16, float(ref_bf.abs().max()))
    if n_scales > 1:  # per-row scales multiply the bfloat16 gradient in float32 before the product
        tol_bf *= 2
    assert bf.dtype == torch.bfloat16 and (bf.double() - ref_bf).abs().max() <= tol_bf


@pytest.mark.parametrize("tiles,h,d", [(1, 1, 1), (3, 5, 130), (4, 33, 64)])
def test_tile_signatures_match_libtrix(tiles, h, d):
    q = codes(tiles * h, d, tiles + h + d)
    if h >= 2:  # a column whose sum is exactly 0 in tile 0: its signature entry is 0
        q[0, 0], q[1, 0] = 1, -1
        q[2:h, 0] = 0
    sig = G.tile_signatures(G.pack_codes(on(q)), tiles).cpu()
    ref = C.tile_signatures(C.pack_int8(q), tiles)
    assert sig.dtype == torch.int8 and torch.equal(sig, ref)
    assert torch.equal(sig, torch.sign(q.view(tiles, h, d).sum(1)).to(torch.int8))


def test_route_scores_and_top_k_match_libtrix_with_ties_and_nan():
    g = torch.Generator().manual_seed(11)
    sig = codes(7, 130, 12)
    x = torch.randn(21, 130, generator=g)
    x[3] = 0.0  # every score 0: ties go to the lower tile index
    scores = G.route_scores(on(x), G.pack_codes(on(sig), on(torch.tensor([3.0])))).cpu()  # scales ignored
    ref = C.route_scores(x, C.pack_int8(sig))
    assert (scores - ref).abs().max() <= 1e-5 * float(ref.abs().max())
    s = ref.clone()
    s[5, 2] = float("nan")
    s[6] = s[6, 4]  # a whole row of equal scores
    s[7, :] = float("nan")
    for k in (1, 3, 7):
        idx, val = G.top_k(on(s), k)
        ridx, rval = C.top_k(s, k)
        assert idx.dtype == torch.int32 and torch.equal(idx.cpu(), ridx)
        assert torch.equal(val.cpu().isnan(), rval.isnan())
        assert torch.equal(val.cpu().nan_to_num(), rval.nan_to_num())
    idx, _ = G.route(on(x), G.pack_codes(on(sig)), 2)
    assert torch.equal(idx.cpu(), trix.route(x, C.pack_int8(sig), 2)[0])


def test_errors_name_the_argument():
    p = G.pack_codes(on(codes(4, 10, 0)))
    with pytest.raises(ValueError, match="'x' must have 10 columns"):
        G.matmul(on(torch.zeros(2, 11)), p)
    with pytest.raises(ValueError, match="'g' must have 4 columns"):
        G.matmul_t(on(torch.zeros(2, 5)), p)
    with pytest.raises(TypeError, match="float32, bfloat16 or float16"):
        G.matmul(on(torch.zeros(2, 10, dtype=torch.float64)), p)
    with pytest.raises(ValueError, match="'k' must be in"):
        G.top_k(on(torch.zeros(2, 3)), 4)
    with pytest.raises(ValueError, match="'tiles' must divide"):
        G.tile_signatures(p, 3)
