"""A library's refusal of a model, with its real error: which library raised it and where, so that a
reader tells a library's limitation from a bug of ours. The encoder workflow records it instead of
failing (quantbench.encoder.quantize)."""
from __future__ import annotations

import traceback


class Unsupported(Exception):
    """The backend's library refused this encoder; carries its real error."""

    def __init__(self, error: BaseException, earlier: dict | None = None):
        self.error, self.earlier = error, earlier or {}
        frames = traceback.extract_tb(error.__traceback__)
        # Where the refusal came from (e.g. gptqmodel/models/auto.py), so a reader can tell a library's
        # limitation from a bug of ours; the library frames on the way say which library's code path
        # it was (GPTQModel's loader raising through transformers' tokenizer code, say).
        self.raised_in = frames[-1].filename.split("site-packages/")[-1] if frames else "?"
        self.library_frames = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}"
                               for f in frames if "site-packages/" in f.filename]
        super().__init__(f"{type(error).__name__}: {error}")

    def summary(self) -> dict:
        text = str(self.error)
        # GPTQModel appends the whole module tree to its message; the first line is the reason.
        first = text.splitlines()[0].removesuffix("(") if text else ""
        return {"error_type": type(self.error).__name__, "error": first[:400], "error_full": text[:2000],
                "raised_in": self.raised_in, "library_frames": self.library_frames[:12],
                **({"earlier_refusals": self.earlier} if self.earlier else {})}
