"""The GPU path of TriX: Triton kernels over the 2-bit packed ternary format.

- `trix.triton.ops`: packing on the device, the packed product and its transpose, tile signatures,
  routing scores and top-k (torch tensors on CUDA, or on CPU under TRITON_INTERPRET=1);
- `trix.triton.autograd`: the ternary linear layer and the grouped tiled FFN with STE gradients;
- `trix.triton.dispatch`: the hook by which trix.autograd sends CUDA tensors here.

Importing `trix.triton` or `trix.triton.dispatch` does not need triton; `ops` and `autograd` do.
"""
