"""Merge a LoRA adapter into a full-precision base: the original weights ("fp"), or the
dequantized weights of the quantized base it was trained on ("dequant", which reproduces the
trained model most closely; see PITFALLS: KL ~0 against 5.5e-4 for the original base)."""
from __future__ import annotations

import copy

from peft import PeftModel

from quantbench.backends import get as get_backend
from quantbench.modelio import RunContext, load_causal_lm, read_meta


def merged_model(kind: str, adapter: str, fp_base: str, quantized_base: str, ctx: RunContext):
    if kind == "fp":
        base, _ = load_causal_lm(fp_base, ctx.device, ctx.dtype)
    elif kind == "dequant":
        base = get_backend(read_meta(quantized_base)["backend"]).dequantize(quantized_base, ctx)
    else:
        raise ValueError(f"unknown merge kind {kind!r}; allowed: fp, dequant")
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    return plain_copy(merged, ctx)


def plain_copy(model, ctx: RunContext):
    """The same weights in a freshly built model without quantization state: a model loaded from a
    bitsandbytes checkpoint keeps its load-time weight conversions, which save_pretrained tries to
    reverse (and cannot) even after dequantization."""
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    fresh = AutoModelForCausalLM.from_config(config, dtype=ctx.dtype)
    missing, unexpected = fresh.load_state_dict(model.state_dict(), strict=False)
    if unexpected or [k for k in missing if "rotary" not in k]:
        raise RuntimeError(f"merged weights do not fit the architecture: missing {missing}, unexpected {unexpected}")
    return fresh.to(ctx.device).eval()
