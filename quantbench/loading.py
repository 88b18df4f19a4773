"""Load a quantbench model folder through the backend that wrote it (its quantbench.json names it),
optionally with a LoRA adapter on top: what every job that runs a model starts with."""
from __future__ import annotations

import dataclasses

from quantbench.backends import get
from quantbench.loaded_model import LoadedModel
from quantbench.modelio import RunContext, load_tokenizer, read_meta


def load(folder: str, ctx: RunContext, adapter: str | None = None,
         trainable: bool = False) -> tuple[LoadedModel, object, dict]:
    """Load a quantbench model folder (and optionally a LoRA adapter on top).

    Returns (loaded, tokenizer, info): the backend's LoadedModel (its model the adapted one when an
    adapter is given), and the load as records keep it (the backend and kernel that actually ran)."""
    meta = read_meta(folder)
    backend = get(meta["backend"])
    loaded = backend.load(folder, meta["params"], ctx)
    if loaded.runtime != backend.RUNTIME:  # planning read the class's RUNTIME: the job must run that one
        raise TypeError(f"backend {meta['backend']!r} loaded a {loaded.runtime} model, but its class says RUNTIME = "
                        f"{backend.RUNTIME!r}")
    info = {"backend": meta["backend"], "method": meta["method"], **loaded.info}
    model = loaded.model
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
        info["adapter"] = str(adapter)
    if not trainable:
        model.eval()
    return dataclasses.replace(loaded, model=model), load_tokenizer(folder), info


def load_model(folder: str, ctx: RunContext, adapter: str | None = None, trainable: bool = False):
    """load() for the jobs that need the model alone: (model, tokenizer, info)."""
    loaded, tokenizer, info = load(folder, ctx, adapter, trainable)
    return loaded.model, tokenizer, info

