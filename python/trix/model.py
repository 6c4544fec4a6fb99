"""trix.Model: run a .trixm model file (written by `trix export`) in libtrix, without torch.

    m = trix.Model.load("model.trixm")
    text = m.generate("ROMEO:", 200, temperature=0)   # prompt + 200 characters, greedy

The same C++ engine as trix_generate and trix::Model (docs/model_format.md), so the same text for
the same arguments. Importing this module imports numpy and trix._C only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from . import _C


class Model:
    """A loaded model (the file is memory-mapped and used in place).

    config: dict of the model's configuration (docs/model_format.md "Config");
    vocab: the characters, token id = index."""

    def __init__(self, impl: "_C.Model") -> None:
        self._m = impl

    @classmethod
    def load(cls, path) -> "Model":
        """Map and check a .trixm file; trix.FormatError (a ValueError) names the field that is wrong."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"Model.load: no model file at '{path}'")
        return cls(_C.Model.load(str(path)))

    @property
    def config(self) -> Dict[str, Any]:
        return self._m.config

    @property
    def vocab(self) -> str:
        return "".join(chr(c) for c in self._m.vocab)

    @property
    def nbytes(self) -> int:
        """Bytes of the mapped file plus what the engine allocated at load."""
        return self._m.nbytes

    def encode(self, text: str) -> List[int]:
        return self._m.encode(text)

    def decode(self, ids) -> str:
        return self._m.decode([int(i) for i in ids])

    def generate(self, prompt: str, n: int, temperature: float = 0.8, top_k: Optional[int] = None,
                 seed: int = 0) -> str:
        """prompt + n generated characters. temperature 0 is greedy (identical to `trix generate
        --temperature 0` on the checkpoint); top_k None samples among all tokens; seed drives sampling
        and random routing. An empty prompt means "\\n", as `trix generate`."""
        if n < 0:
            raise ValueError(f"Model.generate: argument 'n' must be >= 0, got {n}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"Model.generate: argument 'top_k' must be >= 1 or None, got {top_k}")
        return self._m.generate(prompt, int(n), float(temperature), int(top_k or 0), int(seed))

    def state(self, batch: int = 1, seed: int = 0) -> "_C.ModelState":
        """An empty KV cache for `batch` sequences (for forward)."""
        return _C.ModelState(self._m, int(batch), int(seed))

    def forward(self, tokens, state: "_C.ModelState", last_only: bool = False) -> np.ndarray:
        """tokens int [batch, len] appended to state -> logits float32 [batch, len, vocab]
        ([batch, vocab] when last_only)."""
        t = np.ascontiguousarray(np.asarray(tokens), dtype=np.int32)
        if t.ndim == 1:
            t = t[None, :]
        return self._m.forward(t, state, bool(last_only))
