"""trix.convert (trix.nn.convert): swap the nn.Linear layers of an existing model for TriXLinear, in place."""
from __future__ import annotations

from typing import Callable, Optional

import torch.nn as nn


def convert(model: nn.Module, filter_fn: Optional[Callable[[nn.Module, str], bool]] = None, **kw) -> nn.Module:
    """Replace every nn.Linear of model (for which filter_fn(module, qualified_name) is true; all when
    filter_fn is None) by a TriXLinear with a copy of its weights. kw go to TriXLinear (act_quant,
    quant). Returns model (modified in place). A model that is itself an nn.Linear is returned converted."""
    from .linear import TriXLinear

    if isinstance(model, nn.Linear):
        return TriXLinear.from_linear(model, **kw) if filter_fn is None or filter_fn(model, "") else model
    for name, mod in list(model.named_modules()):
        for child_name, child in list(mod.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and (filter_fn is None or filter_fn(child, full)):
                setattr(mod, child_name, TriXLinear.from_linear(child, **kw))
    return model
