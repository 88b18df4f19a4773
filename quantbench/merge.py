"""Merge a LoRA adapter into a full-precision base: the original weights ("fp"), or the
dequantized weights of the quantized base it was trained on ("dequant", which reproduces the
trained model most closely; see PITFALLS: KL ~0 against 5.5e-4 for the original base)."""
from __future__ import annotations

from peft import PeftModel

from quantbench.backends import bnb
from quantbench.modelio import RunContext, load_causal_lm


def merged_model(kind: str, adapter: str, fp_base: str, quantized_base: str, ctx: RunContext):
    if kind == "fp":
        base, _ = load_causal_lm(fp_base, ctx.device, ctx.dtype)
    elif kind == "dequant":
        base = bnb.dequantize(quantized_base, ctx)
    else:
        raise ValueError(f"unknown merge kind {kind!r}; allowed: fp, dequant")
    return PeftModel.from_pretrained(base, adapter).merge_and_unload()
