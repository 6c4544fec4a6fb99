"""PyTorch modules for ternary networks with emergent tile routing (imports torch).

TriXLinear, TriXFFN, SparseTriXFFN, HierarchicalTriXFFN, TriXBlock, TriXLM (+ TriXLMConfig) and the
RoutingInfo every tiled module returns. See docs/nn.md.
"""
from .routing import RoutingInfo, ROUTING_METHODS
from .linear import TriXLinear
from .ffn import TriXFFN, SparseTriXFFN
from .hierarchical import HierarchicalTriXFFN
from .lm import TriXBlock, TriXLM, TriXLMConfig, CausalSelfAttention
from .convert import convert

__all__ = ["RoutingInfo", "ROUTING_METHODS", "TriXLinear", "TriXFFN", "SparseTriXFFN", "HierarchicalTriXFFN",
           "TriXBlock", "TriXLM", "TriXLMConfig", "CausalSelfAttention", "convert"]
