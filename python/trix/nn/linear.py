"""TriXLinear: a drop-in nn.Linear with ternary weights (STE) and packed inference through libtrix."""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn

from .. import ops
from ..autograd import pack_weight, ternary_linear, use_libtrix, weight_packed
from ..quant import QuantConfig, fake_quant_activations
from .packing import Packable


class TriXLinear(Packable):
    """y = x @ (gamma * q(W))^T + b with latent float W [out, in] and q by trix.quant.

    act_quant=True also rounds the input to int8 per row (what trix.matmul_i8 computes), with the STE.
    Unlike the FFN modules it returns a tensor, like the nn.Linear it replaces (forward(x [..., in]) ->
    [..., out]). pack() (in eval mode) caches the packed weights: forward then runs trix.matmul or,
    with act_quant, the exact int8 product trix.matmul_i8.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, act_quant: bool = False,
                 quant: QuantConfig = QuantConfig()) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"TriXLinear: arguments 'in_features' and 'out_features' must be >= 1, got "
                             f"{in_features} and {out_features}")
        self.in_features, self.out_features, self.act_quant, self.quant = in_features, out_features, act_quant, quant
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's initialisation
        self._packed: Optional[ops.PackedTernary] = None
        self._packed_np: Optional[ops.PackedTernary] = None

    @classmethod
    def from_linear(cls, lin: nn.Linear, **kw) -> "TriXLinear":
        """A TriXLinear whose latent weights (and bias) are copies of lin's."""
        m = cls(lin.in_features, lin.out_features, bias=lin.bias is not None, **kw)
        with torch.no_grad():
            m.weight.copy_(lin.weight)
            if lin.bias is not None:
                m.bias.copy_(lin.bias)
        return m.to(lin.weight.device)

    def pack(self) -> "TriXLinear":
        if self.training:
            raise RuntimeError("TriXLinear.pack: call model.eval() first (packed inference has no gradient)")
        if self.weight.device.type != "cpu":
            raise RuntimeError(f"TriXLinear.pack: packed inference runs on the CPU through libtrix; the weights "
                               f"are on {self.weight.device}")
        self._packed = pack_weight(self.weight, self.quant)
        self._packed_np = self._packed.numpy()  # numpy views: no DLPack round trip per call
        self._auto_key = None
        return self


    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"TriXLinear.forward: argument 'x' must have last dim {self.in_features}, "
                             f"got shape {list(x.shape)}")
        self._sync_auto_pack(x)
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        if self._packed_np is not None and use_libtrix(x2):
            xa = x2.detach().contiguous().numpy()
            y = torch.from_numpy(ops.matmul_i8(xa, self._packed_np) if self.act_quant else ops.matmul(xa, self._packed_np))
        else:
            if self.act_quant:
                x2 = fake_quant_activations(x2)
            packed = self._packed
            if packed is None and not self.training and use_libtrix(x2) and not torch.compiler.is_compiling():
                packed = weight_packed(self.weight, self.quant)  # eval without pack(): packed once per change
            y = ternary_linear(x2, self.weight, self.quant, packed)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)  # bf16 activations stay bf16
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"act_quant={self.act_quant}, rule={self.quant.rule}")
