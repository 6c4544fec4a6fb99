"""What every packable module shares: the packed cache and its invalidation."""
from __future__ import annotations

import torch.nn as nn


class Packable(nn.Module):
    """A module with a packed-weights cache (``_packed``, and numpy views in ``_packed_np``) filled by its
    ``pack()``; ``unpack()`` or switching to training drops it, since the weights are about to change."""

    _packed = None
    _packed_np = None

    def unpack(self):
        self._packed = None
        self._packed_np = None
        return self

    @property
    def packed(self) -> bool:
        return self._packed is not None

    def train(self, mode: bool = True):
        if mode:
            self._packed = self._packed_np = None
        return super().train(mode)
