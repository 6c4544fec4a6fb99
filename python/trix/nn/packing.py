"""What every packable module shares: the packed cache and its invalidation."""
from __future__ import annotations

import torch
import torch.nn as nn


class Packable(nn.Module):
    """A module with a packed-weights cache (``_packed``, and numpy views in ``_packed_np``) filled by its
    ``pack()``. The cache is a copy of the weights, so anything that changes them drops it (the module
    then runs unpacked, with the new weights, until ``pack()`` is called again): ``unpack()``, switching
    to training, ``load_state_dict``, assigning a parameter or buffer (``m.weight = ...``), and ``to()``
    / ``cuda()`` / ``half()`` or any other conversion that moves or converts a tensor. In-place edits
    of a weight (``m.weight.data.copy_(...)``) are not seen: call ``unpack()`` or ``pack()`` after them."""

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

    def _drop_packed(self) -> None:
        if self.__dict__.get("_packed") is not None or self.__dict__.get("_packed_np") is not None:
            self.unpack()  # a subclass's unpack also drops what it derived (e.g. a SignatureMemory)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        self._drop_packed()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def __setattr__(self, name, value):
        if isinstance(value, torch.Tensor) and ("_parameters" in self.__dict__) and (
                name in self._parameters or name in self._buffers):
            self._drop_packed()
        super().__setattr__(name, value)

    def _apply(self, fn, *args, **kwargs):
        def state():
            return [(t.data_ptr(), t.dtype, t.device) for t in self.parameters()] + \
                   [(t.data_ptr(), t.dtype, t.device) for t in self.buffers()]

        before = state()
        out = super()._apply(fn, *args, **kwargs)
        if state() != before:  # .to() on the same device and dtype changes nothing: keep the cache
            self._drop_packed()
        return out
