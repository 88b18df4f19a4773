"""Load a quantbench model folder through the backend that wrote it (its quantbench.json names it),
optionally with a LoRA adapter on top: what every job that runs a model starts with."""
from __future__ import annotations

from quantbench.backends import get
from quantbench.modelio import RunContext, load_tokenizer, read_meta


def load_model(folder: str, ctx: RunContext, adapter: str | None = None, trainable: bool = False):
    """Load a quantbench model folder (and optionally a LoRA adapter on top).

    Returns (model, tokenizer, info) where info records the backend and kernel that actually ran.
    """
    meta = read_meta(folder)
    backend = get(meta["backend"])
    model, info = backend.load(folder, meta["params"], ctx)
    info = {"backend": meta["backend"], "method": meta["method"], **info}
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
        info["adapter"] = str(adapter)
    if not trainable:
        model.eval()
    return model, load_tokenizer(folder), info
