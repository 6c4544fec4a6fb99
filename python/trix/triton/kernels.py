"""Triton kernels over the public packed ternary format (docs/format.md), read in place.

Weights stay in GPU memory as the format's bytes: a row is ceil(K / 128) blocks of 32 bytes, byte j of
a block holds weights j, j+32, j+64, j+96 in bits 0-1, 2-3, 4-5, 6-7, code = w + 1. A kernel loads one
[rows, 32] byte tile per 128 columns and decodes the four 32-column slices with a shift and a mask
(w = ((b >> 2s) & 3) - 1), so every weight byte is read once per tile of activations. Products
accumulate in float32 (tl.dot); activations are float32, bfloat16 or float16 (CDT, the compute dtype).

Two product shapes cover the linear layer and the tiled FFN:
- `packed_nt`: out[r, m] = sum_k a[r, k] * W[m, k]     (forward: x @ W^T)
- `packed_nn`: out[r, c] = sum_m a[r, m] * W[m, c]     (input gradient: g @ W)
Both run over a *block schedule* when GROUPED: row block b covers sorted rows blk_start[b] ..
blk_end[b] - 1 of tile blk_tile[b] (-1: nothing to do), and tile t uses weight rows t*TILE_ROWS ..
(t+1)*TILE_ROWS - 1. One launch then computes every tile, as MoE grouped GEMMs do (megablocks).
`grouped_wgrad` is the straight-through weight gradient of a tile: the sum over its rows of outer products.
"""
from __future__ import annotations

import triton
import triton.language as tl

BLOCK_WEIGHTS = 128  # weights per packed block (docs/format.md)
BLOCK_BYTES = 32

ACT_IDS = {"identity": 0, "relu": 1, "gelu": 2, "silu": 3}


@triton.jit
def _act(v, ACT: tl.constexpr):
    """act(v) in float32, as trix.autograd.activate (gelu: the exact erf form)."""
    if ACT == 1:
        v = tl.maximum(v, 0.0)
    elif ACT == 2:
        v = 0.5 * v * (1.0 + tl.erf(v * 0.7071067811865476))
    elif ACT == 3:
        v = v / (1.0 + tl.exp(-v))
    return v


@triton.jit
def _act_grad(v, ACT: tl.constexpr):
    """d act / dv at v in float32, as trix.autograd.activate_grad."""
    if ACT == 0:
        g = tl.full(v.shape, 1.0, tl.float32)
    elif ACT == 1:
        g = tl.where(v > 0.0, 1.0, 0.0)
    elif ACT == 2:
        g = 0.5 * (1.0 + tl.erf(v * 0.7071067811865476)) + v * tl.exp(-0.5 * v * v) * 0.3989422804014327
    else:
        s = 1.0 / (1.0 + tl.exp(-v))
        g = s * (1.0 + v * (1.0 - s))
    return g


@triton.jit
def _decode(b, S: tl.constexpr, CDT: tl.constexpr):
    """Weights of slice S (columns 32S .. 32S+31 of each block) from int32 bytes b, as CDT (through
    float32: integer to bfloat16 conversion is the least portable cast)."""
    return (((b >> (2 * S)) & 3) - 1).to(tl.float32).to(CDT)


@triton.jit
def _row_block(pid, blk_tile, blk_start, blk_end, R, a_rows, GROUPED: tl.constexpr, GATHER_A: tl.constexpr,
               BLOCK_R: tl.constexpr):
    """(tile, rows, row mask, rows of `a` to read (int64)) of row block pid: from the schedule (tile
    -1: a spare block, nothing to do), or plain blocks of R rows of tile 0."""
    if GROUPED:
        t = tl.load(blk_tile + pid)
        r0 = tl.load(blk_start + pid)
        r1 = tl.load(blk_end + pid)
    else:
        t = 0
        r0 = pid * BLOCK_R
        r1 = R
    rows = r0 + tl.arange(0, BLOCK_R)
    rmask = rows < r1
    if GATHER_A:
        src = tl.load(a_rows + rows, mask=rmask, other=0)
    else:
        src = rows
    return t, rows, rmask, src.to(tl.int64)


@triton.jit
def pack_kernel(q_ptr, q_stride, out_ptr, row_bytes, K, BLOCK_ROWS: tl.constexpr, ROWS: tl.constexpr):
    """Pack ternary values q [M, K] (any numeric dtype, values -1, 0, 1) into the public format.
    Grid: (cdiv(M, BLOCK_ROWS), blocks per row). Padding columns get code 01 (weight 0)."""
    pr = tl.program_id(0)
    kb = tl.program_id(1)
    rows = pr * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    rmask = rows < ROWS
    j = tl.arange(0, 32)
    byte = tl.zeros((BLOCK_ROWS, 32), dtype=tl.int32)
    for s in tl.static_range(4):
        cols = kb * 128 + s * 32 + j
        m = rmask[:, None] & (cols < K)[None, :]
        q = tl.load(q_ptr + rows[:, None].to(tl.int64) * q_stride + cols[None, :], mask=m, other=0)
        code = tl.minimum(tl.maximum(q.to(tl.float32), -1.0), 1.0).to(tl.int32) + 1
        byte = byte | (code << (2 * s))
    tl.store(out_ptr + rows[:, None].to(tl.int64) * row_bytes + kb * 32 + j[None, :], byte.to(tl.uint8),
             mask=rmask[:, None])


@triton.jit
def packed_nt_kernel(a_ptr, a_stride, a_rows, w_ptr, row_bytes, scale_ptr, out_ptr, out_stride, out_rows,
                     row_scale, blk_tile, blk_start, blk_end, R, M, K, TILE_ROWS,
                     GROUPED: tl.constexpr, GATHER_A: tl.constexpr, SCATTER_OUT: tl.constexpr,
                     ROW_SCALE: tl.constexpr, N_SCALES: tl.constexpr, ACT_A: tl.constexpr,
                     CDT: tl.constexpr, PREC: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_M: tl.constexpr):
    """out[orow(r), m] = rs[r] * scale(m) * sum_k act(a[arow(r), k]) * W[t*TILE_ROWS + m, k].
    Grid: (row blocks, cdiv(M, BLOCK_M)). N_SCALES: 0 none, 1 one scale, 2 one per weight row."""
    t, rows, rmask, src = _row_block(tl.program_id(0), blk_tile, blk_start, blk_end, R, a_rows, GROUPED, GATHER_A,
                                     BLOCK_R)
    if t < 0:
        return
    m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    mmask = m < M
    wrow = (t * TILE_ROWS + m).to(tl.int64)
    j = tl.arange(0, 32)
    acc = tl.zeros((BLOCK_R, BLOCK_M), dtype=tl.float32)
    for kb in range(0, tl.cdiv(K, 128)):
        b = tl.load(w_ptr + wrow[:, None] * row_bytes + kb * 32 + j[None, :], mask=mmask[:, None],
                    other=0x55).to(tl.int32)
        for s in tl.static_range(4):
            cols = kb * 128 + s * 32 + j
            a = tl.load(a_ptr + src[:, None] * a_stride + cols[None, :],
                        mask=rmask[:, None] & (cols < K)[None, :], other=0.0)
            if ACT_A != 0:
                a = _act(a.to(tl.float32), ACT_A)
            acc += tl.dot(a.to(CDT), tl.trans(_decode(b, s, CDT)), input_precision=PREC)
    if N_SCALES == 1:
        acc = acc * tl.load(scale_ptr)
    elif N_SCALES == 2:
        acc = acc * tl.load(scale_ptr + wrow, mask=mmask, other=0.0)[None, :]
    if ROW_SCALE:
        acc = acc * tl.load(row_scale + rows, mask=rmask, other=0.0).to(tl.float32)[:, None]
    dst = tl.load(out_rows + rows, mask=rmask, other=0) if SCATTER_OUT else rows
    tl.store(out_ptr + dst.to(tl.int64)[:, None] * out_stride + m[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=rmask[:, None] & mmask[None, :])


@triton.jit
def packed_nn_kernel(a_ptr, a_stride, a_rows, w_ptr, row_bytes, scale_ptr, out_ptr, out_stride, out_rows,
                     pre_ptr, gate_ptr, dgate_ptr, n_col_groups,
                     blk_tile, blk_start, blk_end, R, M, C, TILE_ROWS,
                     GROUPED: tl.constexpr, GATHER_A: tl.constexpr, SCATTER_OUT: tl.constexpr,
                     N_SCALES: tl.constexpr, FFN_BWD: tl.constexpr, HAS_GATE: tl.constexpr, ACT: tl.constexpr,
                     CDT: tl.constexpr, PREC: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_M: tl.constexpr):
    """v[r, c] = sum_m a[arow(r), m] * scale(m) * W[t*TILE_ROWS + m, c] over 32 columns c per program
    (grid: (row blocks, 4 * blocks per row)). Stored as out[orow(r), c] = v, or with FFN_BWD (the tiled
    FFN's hidden gradient; v is dL/d(hidden) before the gate): out[r, c] = gate[r] * v * act'(pre[r, c])
    and dgate[r, group] = sum_c v * act(pre[r, c]) (partial sums, one per 32-column group)."""
    t, rows, rmask, src = _row_block(tl.program_id(0), blk_tile, blk_start, blk_end, R, a_rows, GROUPED, GATHER_A,
                                     BLOCK_R)
    if t < 0:
        return
    pc = tl.program_id(1)
    kb = pc // 4
    s = pc % 4
    j = tl.arange(0, 32)
    cols = kb * 128 + s * 32 + j
    cmask = cols < C
    acc = tl.zeros((BLOCK_R, 32), dtype=tl.float32)
    for m0 in range(0, M, BLOCK_M):
        m = m0 + tl.arange(0, BLOCK_M)
        mmask = m < M
        wrow = (t * TILE_ROWS + m).to(tl.int64)
        a = tl.load(a_ptr + src[:, None] * a_stride + m[None, :], mask=rmask[:, None] & mmask[None, :], other=0.0)
        b = tl.load(w_ptr + wrow[:, None] * row_bytes + kb * 32 + j[None, :], mask=mmask[:, None],
                    other=0x55).to(tl.int32)
        w = (((b >> (2 * s)) & 3) - 1).to(tl.float32)
        if N_SCALES == 2:  # per-row scales weigh the reduction: apply them in float32
            a = a.to(tl.float32) * tl.load(scale_ptr + wrow, mask=mmask, other=0.0)[None, :]
            acc += tl.dot(a, w, input_precision=PREC)
        else:
            acc += tl.dot(a.to(CDT), w.to(CDT), input_precision=PREC)
    if N_SCALES == 1:
        acc = acc * tl.load(scale_ptr)
    omask = rmask[:, None] & cmask[None, :]
    if FFN_BWD:
        pre = tl.load(pre_ptr + rows.to(tl.int64)[:, None] * out_stride + cols[None, :], mask=omask, other=0.0)
        if HAS_GATE:
            part = tl.sum(tl.where(omask, acc * _act(pre, ACT), 0.0), axis=1)
            tl.store(dgate_ptr + rows.to(tl.int64) * n_col_groups + pc, part, mask=rmask)
            acc = acc * tl.load(gate_ptr + rows, mask=rmask, other=0.0).to(tl.float32)[:, None]
        acc = acc * _act_grad(pre, ACT)
    dst = tl.load(out_rows + rows, mask=rmask, other=0) if SCATTER_OUT else rows
    tl.store(out_ptr + dst.to(tl.int64)[:, None] * out_stride + cols[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=omask)


@triton.jit
def grouped_wgrad_kernel(a_ptr, a_stride, a_rows, a_scale, b_ptr, b_stride, b_rows, offsets, out_ptr,
                         P, Q, GATHER_A: tl.constexpr, SCALE_A: tl.constexpr, GATHER_B: tl.constexpr,
                         ACT_B: tl.constexpr, CDT: tl.constexpr, PREC: tl.constexpr,
                         BLOCK_R: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_Q: tl.constexpr):
    """out[t*P + p, q] = sum over sorted rows r of tile t (offsets[t] <= r < offsets[t+1]) of
    (ascale[r] * a[arow(r), p]) * act(b[brow(r), q]); a tile without rows gets exact zeros.
    Grid: (tiles * cdiv(P, BLOCK_P), cdiv(Q, BLOCK_Q))."""
    n_pb = tl.cdiv(P, BLOCK_P)
    t = tl.program_id(0) // n_pb
    p = (tl.program_id(0) % n_pb) * BLOCK_P + tl.arange(0, BLOCK_P)
    q = tl.program_id(1) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    pmask = p < P
    qmask = q < Q
    r_start = tl.load(offsets + t)
    r_end = tl.load(offsets + t + 1)
    acc = tl.zeros((BLOCK_P, BLOCK_Q), dtype=tl.float32)
    for r0 in range(r_start, r_end, BLOCK_R):
        rows = r0 + tl.arange(0, BLOCK_R)
        rmask = rows < r_end
        ar = tl.load(a_rows + rows, mask=rmask, other=0) if GATHER_A else rows
        br = tl.load(b_rows + rows, mask=rmask, other=0) if GATHER_B else rows
        a = tl.load(a_ptr + ar.to(tl.int64)[:, None] * a_stride + p[None, :], mask=rmask[:, None] & pmask[None, :],
                    other=0.0)
        if SCALE_A:
            a = a.to(tl.float32) * tl.load(a_scale + rows, mask=rmask, other=0.0).to(tl.float32)[:, None]
        b = tl.load(b_ptr + br.to(tl.int64)[:, None] * b_stride + q[None, :], mask=rmask[:, None] & qmask[None, :],
                    other=0.0)
        if ACT_B != 0:
            b = tl.where(rmask[:, None], _act(b.to(tl.float32), ACT_B), 0.0)
        acc += tl.dot(tl.trans(a.to(CDT)), b.to(CDT), input_precision=PREC)
    tl.store(out_ptr + (t * P + p).to(tl.int64)[:, None] * Q + q[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=pmask[:, None] & qmask[None, :])


@triton.jit
def signatures_kernel(w_ptr, row_bytes, out_ptr, H, D, BLOCK_H: tl.constexpr):
    """sig[t, c] = sign(sum of the H packed up rows of tile t at column c), int8.
    Grid: (tiles, blocks per row)."""
    t = tl.program_id(0)
    kb = tl.program_id(1)
    j = tl.arange(0, 32)
    acc0 = tl.zeros((32,), dtype=tl.int32)
    acc1 = tl.zeros((32,), dtype=tl.int32)
    acc2 = tl.zeros((32,), dtype=tl.int32)
    acc3 = tl.zeros((32,), dtype=tl.int32)
    for h0 in range(0, H, BLOCK_H):
        h = h0 + tl.arange(0, BLOCK_H)
        row = (t * H + h).to(tl.int64)
        b = tl.load(w_ptr + row[:, None] * row_bytes + kb * 32 + j[None, :], mask=(h < H)[:, None],
                    other=0x55).to(tl.int32)
        acc0 += tl.sum((b & 3) - 1, axis=0)
        acc1 += tl.sum(((b >> 2) & 3) - 1, axis=0)
        acc2 += tl.sum(((b >> 4) & 3) - 1, axis=0)
        acc3 += tl.sum(((b >> 6) & 3) - 1, axis=0)
    base = out_ptr + t.to(tl.int64) * D + kb * 128
    c = kb * 128 + j
    tl.store(base + j, ((acc0 > 0).to(tl.int32) - (acc0 < 0).to(tl.int32)).to(tl.int8), mask=c < D)
    tl.store(base + 32 + j, ((acc1 > 0).to(tl.int32) - (acc1 < 0).to(tl.int32)).to(tl.int8), mask=c + 32 < D)
    tl.store(base + 64 + j, ((acc2 > 0).to(tl.int32) - (acc2 < 0).to(tl.int32)).to(tl.int8), mask=c + 64 < D)
    tl.store(base + 96 + j, ((acc3 > 0).to(tl.int32) - (acc3 < 0).to(tl.int32)).to(tl.int8), mask=c + 96 < D)


@triton.jit
def top_k_kernel(s_ptr, idx_ptr, val_ptr, N, T, K_SEL: tl.constexpr, BLOCK_N: tl.constexpr,
                 BLOCK_T: tl.constexpr):
    """The K_SEL best of each row of scores [N, T]: larger first, NaN last, equal scores to the lower
    index (libtrix's rule). Grid: (cdiv(N, BLOCK_N),)."""
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    col = tl.arange(0, BLOCK_T)
    rmask = rows < N
    inside = rmask[:, None] & (col < T)[None, :]
    s = tl.load(s_ptr + rows.to(tl.int64)[:, None] * T + col[None, :], mask=inside, other=0.0)
    avail = inside
    for i in tl.static_range(K_SEL):
        num = avail & (s == s)  # available and not NaN
        best = tl.max(tl.where(num, s, float("-inf")), axis=1)
        has_num = tl.sum(num.to(tl.int32), axis=1) > 0
        cand = tl.where(has_num[:, None], num & (s == best[:, None]), avail)
        pick = tl.min(tl.where(cand, col[None, :], BLOCK_T), axis=1)
        val = tl.sum(tl.where(col[None, :] == pick[:, None], s, 0.0), axis=1)
        val = tl.where(has_num, val, float("nan"))
        tl.store(idx_ptr + rows.to(tl.int64) * K_SEL + i, pick, mask=rmask)
        tl.store(val_ptr + rows.to(tl.int64) * K_SEL + i, val, mask=rmask)
        avail = avail & (col[None, :] != pick[:, None])
