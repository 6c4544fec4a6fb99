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
    of a weight (``m.weight.data.copy_(...)``) are not seen: call ``unpack()`` or ``pack()`` after them.

    Eval without ``pack()``: in eval mode with autograd off (``torch.no_grad()``, ``inference_mode``, as
    ``TriXLM.generate`` runs), on CPU float32, a module packs itself on its first call and runs the packed
    path (the same libtrix calls, the same bits). The automatic pack is keyed on the version counter and
    storage of every parameter and buffer: any change (an optimizer step, ``load_state_dict``, an
    in-place edit, an assignment) repacks on the next such call; a call that needs autograd (training,
    or eval with gradients on) drops it and runs unpacked. ``auto_pack = False`` (per module) turns it off."""

    _derived = ("_packed", "_packed_np", "_auto_key")  # what pack() made: not copied or pickled
    _packed = None
    _packed_np = None
    _auto_key = None  # weights' (version, storage) when the automatic pack was made; None: not automatic
    auto_pack = True

    def unpack(self):
        self._packed = None
        self._packed_np = None
        self._auto_key = None
        return self

    @property
    def packed(self) -> bool:
        """Whether pack() was called (and nothing has dropped it since); an automatic pack is not counted."""
        return self._packed is not None and self._auto_key is None

    def train(self, mode: bool = True):
        if mode:
            self._packed = self._packed_np = self._auto_key = None
        return super().train(mode)

    def __getstate__(self):
        """A copy (copy.deepcopy, pickle) starts unpacked: the packed caches are derived from the weights
        (and may hold libtrix objects that do not pickle)."""
        state = self.__dict__.copy()
        for name in self._derived:
            state[name] = None
        return state

    def _weights_key(self) -> tuple:
        return tuple((t._version, t.data_ptr(), t.dtype, t.device) for t in self.parameters()) + \
            tuple((t._version, t.data_ptr(), t.dtype, t.device) for t in self.buffers())

    def _sync_auto_pack(self, x: torch.Tensor) -> None:
        """Before a forward call: make, refresh or drop the automatic pack (see the class docstring)."""
        auto = self._auto_key
        if self._packed is not None and auto is None:
            return  # packed by the caller: the caller's cache, invalidated as documented above
        want = (self.auto_pack and not self.training and not torch.is_grad_enabled()
                and not torch.compiler.is_compiling() and x.device.type == "cpu" and x.dtype == torch.float32
                and all(p.device.type == "cpu" and p.dtype == torch.float32 for p in self.parameters()))
        if not want and auto is None:
            return
        key = self._weights_key()
        if auto is not None and (not want or key != auto):
            self.unpack()
        if want and self._packed is None:
            self.pack()
            self._auto_key = key

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
