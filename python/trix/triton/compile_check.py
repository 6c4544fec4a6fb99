"""Compile every trix.triton kernel, in the specialisations trix launches, for a CUDA target ahead of
time: Triton's own pipeline (TTIR, TTGIR, LLVM IR, PTX, then ptxas to a cubin) with no GPU and no
driver. The interpreter tests check what the kernels compute; this checks that the GPU compiler
accepts them and reports whether tl.dot became tensor-core instructions (wgmma / mma).

    python -m trix.triton.compile_check [--arch 90] [--only NAME]   (TRITON_INTERPRET must be unset)
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from typing import Dict, List, Tuple

PTRS = {  # pointer argument -> element type, per kernel family (the dtypes the launchers pass)
    "pack_kernel": {"q_ptr": "*fp32", "out_ptr": "*u8"},
    "packed_nt_kernel": {"a_ptr": "*{a}", "a_rows": "*i32", "w_ptr": "*u8", "scale_ptr": "*fp32",
                         "out_ptr": "*{o}", "out_rows": "*i32", "row_scale": "*fp32", "blk_tile": "*i32",
                         "blk_start": "*i32", "blk_end": "*i32"},
    "packed_nn_kernel": {"a_ptr": "*{a}", "a_rows": "*i32", "w_ptr": "*u8", "scale_ptr": "*fp32",
                         "out_ptr": "*{o}", "out_rows": "*i32", "pre_ptr": "*fp32", "gate_ptr": "*fp32",
                         "dgate_ptr": "*fp32", "blk_tile": "*i32", "blk_start": "*i32", "blk_end": "*i32"},
    "grouped_wgrad_kernel": {"a_ptr": "*{a}", "a_rows": "*i32", "a_scale": "*fp32", "b_ptr": "*{b}",
                             "b_rows": "*i32", "offsets": "*i32", "out_ptr": "*fp32"},
    "signatures_kernel": {"w_ptr": "*u8", "out_ptr": "*i8"},
    "top_k_kernel": {"s_ptr": "*fp32", "idx_ptr": "*i32", "val_ptr": "*fp32"},
}


def variants() -> List[Tuple[str, str, Dict[str, str], Dict[str, object]]]:
    """(label, kernel, pointer dtypes, constexprs) of the launches in trix.triton.ops / autograd."""
    import triton.language as tl

    lin = dict(GROUPED=False, GATHER_A=False, SCATTER_OUT=False, ROW_SCALE=False, ACT_A=0)
    bf = dict(a="bf16", o="bf16")
    out = [
        ("pack", "pack_kernel", {}, dict(BLOCK_ROWS=32, ROWS=4096)),
        ("matmul fp32 ieee", "packed_nt_kernel", dict(a="fp32", o="fp32"),
         dict(lin, N_SCALES=1, CDT=tl.float32, PREC="ieee", BLOCK_R=64, BLOCK_M=64)),
        ("matmul bf16 batch<=16 (GEMV)", "packed_nt_kernel", bf,
         dict(lin, N_SCALES=1, CDT=tl.bfloat16, PREC=None, BLOCK_R=16, BLOCK_M=32)),
        ("matmul fp16 per-row scales", "packed_nt_kernel", dict(a="fp16", o="fp16"),
         dict(lin, N_SCALES=2, CDT=tl.float16, PREC=None, BLOCK_R=64, BLOCK_M=64)),
        ("matmul_t bf16", "packed_nn_kernel", bf,
         dict(GROUPED=False, GATHER_A=False, SCATTER_OUT=False, N_SCALES=1, FFN_BWD=False, HAS_GATE=False,
              ACT=0, CDT=tl.bfloat16, PREC=None, BLOCK_R=64, BLOCK_M=64)),
        ("matmul_t fp32 per-row scales", "packed_nn_kernel", dict(a="fp32", o="fp32"),
         dict(GROUPED=False, GATHER_A=False, SCATTER_OUT=False, N_SCALES=2, FFN_BWD=False, HAS_GATE=False,
              ACT=0, CDT=tl.float32, PREC="ieee", BLOCK_R=64, BLOCK_M=64)),
        ("ffn up (grouped, gather)", "packed_nt_kernel", dict(a="bf16", o="fp32"),
         dict(GROUPED=True, GATHER_A=True, SCATTER_OUT=False, ROW_SCALE=False, N_SCALES=1, ACT_A=0,
              CDT=tl.bfloat16, PREC=None, BLOCK_R=64, BLOCK_M=64)),
        ("ffn down (grouped, gelu, gates, scatter)", "packed_nt_kernel", dict(a="fp32", o="fp32"),
         dict(GROUPED=True, GATHER_A=False, SCATTER_OUT=True, ROW_SCALE=True, N_SCALES=1, ACT_A=2,
              CDT=tl.bfloat16, PREC=None, BLOCK_R=64, BLOCK_M=64)),
        ("ffn hidden grad (grouped, gelu', gate grad)", "packed_nn_kernel", dict(a="bf16", o="fp32"),
         dict(GROUPED=True, GATHER_A=True, SCATTER_OUT=False, N_SCALES=1, FFN_BWD=True, HAS_GATE=True,
              ACT=2, CDT=tl.bfloat16, PREC=None, BLOCK_R=64, BLOCK_M=64)),
        ("ffn input grad (grouped, scatter)", "packed_nn_kernel", dict(a="fp32", o="fp32"),
         dict(GROUPED=True, GATHER_A=False, SCATTER_OUT=True, N_SCALES=1, FFN_BWD=False, HAS_GATE=False,
              ACT=0, CDT=tl.bfloat16, PREC=None, BLOCK_R=64, BLOCK_M=64)),
        ("ffn up weight grad", "grouped_wgrad_kernel", dict(a="fp32", b="bf16"),
         dict(GATHER_A=False, SCALE_A=False, GATHER_B=True, ACT_B=0, CDT=tl.bfloat16, PREC=None,
              BLOCK_R=64, BLOCK_P=64, BLOCK_Q=64)),
        ("ffn down weight grad (gates, silu)", "grouped_wgrad_kernel", dict(a="bf16", b="fp32"),
         dict(GATHER_A=True, SCALE_A=True, GATHER_B=False, ACT_B=3, CDT=tl.bfloat16, PREC=None,
              BLOCK_R=64, BLOCK_P=64, BLOCK_Q=64)),
        ("signatures", "signatures_kernel", {}, dict(BLOCK_H=32)),
        ("top-k (k=2 of 8)", "top_k_kernel", {}, dict(K_SEL=2, BLOCK_N=64, BLOCK_T=8)),
    ]
    return out


def compile_one(kernel: str, dtypes: Dict[str, str], constexprs: Dict[str, object], arch: int):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from . import kernels as K

    fn = getattr(K, kernel)
    unknown = set(constexprs) - set(fn.arg_names)
    if unknown:
        raise ValueError(f"compile_check: {kernel} has no parameters {sorted(unknown)}")
    ptrs = {k: v.format(**dtypes) for k, v in PTRS[kernel].items()}
    sig = {n: "constexpr" if n in constexprs else ptrs.get(n, "i32") for n in fn.arg_names}
    return triton.compile(ASTSource(fn, sig, constexprs=constexprs), target=GPUTarget("cuda", arch, 32))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="compile trix.triton's kernels for a CUDA target, without a GPU")
    ap.add_argument("--arch", type=int, default=90, help="compute capability x10 (90: H100/H200; 80: A100)")
    ap.add_argument("--only", help="compile only the variants whose label contains this text")
    args = ap.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "") == "1":
        print("compile_check: unset TRITON_INTERPRET (the interpreter compiles nothing)", file=sys.stderr)
        return 2
    failed = 0
    for label, kernel, dtypes, constexprs in variants():
        if args.only and args.only not in label:
            continue
        t = time.perf_counter()
        try:
            k = compile_one(kernel, dtypes, constexprs, args.arch)
        except Exception as e:  # report every variant, then fail
            failed += 1
            print(f"FAIL {label}: {type(e).__name__}: {e}")
            continue
        mma = sorted(set(re.findall(r"\b(wgmma\.mma_async|mma\.sync)", k.asm["ptx"])))
        print(f"ok   {label}: sm_{args.arch} cubin {len(k.asm['cubin'])} bytes, shared {k.metadata.shared} B, "
              f"tensor-core ops {mma or 'none'}, {time.perf_counter() - t:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
