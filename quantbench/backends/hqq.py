"""HQQ (Half-Quadratic Quantization): calibration-free weight quantization that fits each group's
zero point and scale by a half-quadratic solver, through hqq's own model API (AutoHQQHFModel:
quantize_model, save_quantized, from_quantized). transformers 5.23's HqqConfig says "not available
yet", so the folder holds hqq's format (config.json + qmodel.pt), not a from_pretrained one."""
from __future__ import annotations

from pathlib import Path

from quantbench.backends.base import Backend, register
from quantbench.backends.groups import group_size_problem
from quantbench.loaded_model import LoadedModel

# hqq 0.2.8's Quantizer.SUPPORTED_BITS (tests/test_quantized_logits.py checks they agree), with the
# bits each weight takes once packed: 5 and 6 bits are stored in a byte, 1.58 (ternary) in 2 bits,
# 3 bits ten to an int32.
STORED_BITS = {1: 1, 1.58: 2, 2: 2, 3: 3.2, 4: 4, 5: 8, 6: 8, 8: 8}
GROUP_MULTIPLE = 8  # hqq_base_quant_config asserts group_size % 8 == 0
SPEC = {"bits": list(STORED_BITS), "group_size": int}
DEFAULTS = {"group_size": 64}


def quant_config(params: dict) -> dict:
    from hqq.core.quantize import BaseQuantizeConfig

    g = params["group_size"]
    return BaseQuantizeConfig(nbits=params["bits"], group_size=g if g > 0 else None, axis=1)


@register("hqq")
class HQQ(Backend):
    SPEC = SPEC
    DEFAULTS = DEFAULTS
    REQUIRED = ("bits",)
    DESCRIPTIONS = {
        "bits": "bits per weight (1.58: ternary); 3, 5 and 6 are stored in more (STORED_BITS)",
        "group_size": "weights sharing one scale and zero point, a multiple of 8 (-1: one per row)",
    }
    LABEL = "HQQ"
    COLOR = "#e377c2"
    MARKER = "P"
    SENSITIVITY = True
    QUANTIZE_MINUTES = (10, 5)

    def describe(self, params: dict) -> str:
        g = params["group_size"]
        return f"HQQ {params['bits']}-bit, " + (f"group {g}" if g > 0 else "per row")

    def needs_cuda(self, params: dict) -> str | None:
        return None  # hqq's PyTorch backend (dequantize, then matmul) runs anywhere

    def problems(self, params: dict, model_dims: list[int] | None) -> list[str]:
        why = group_size_problem(params["group_size"], model_dims, multiple_of=GROUP_MULTIPLE)
        return [f"group_size: {why}"] if why else []

    def bits_per_weight(self, params: dict) -> float:
        g = params["group_size"]
        # Per group one scale and one zero point, kept in the compute dtype: counted at 16 bits, as on
        # a GPU (HQQ's own sizes); a float32 CPU run holds them in 32 (weights_memory_mb shows it).
        # Per row (-1) their cost depends on the layer width and is left out, as for per-row int8.
        return STORED_BITS[params["bits"]] + (32 / g if g > 0 else 0.0)

    def quantize(self, src: str, dst: Path, params: dict, ctx) -> dict:
        from hqq.models.hf.base import AutoHQQHFModel

        from quantbench.modelio import load_causal_lm

        model, tokenizer = load_causal_lm(src, ctx.device, dtype=ctx.dtype)
        AutoHQQHFModel.quantize_model(model, quant_config=quant_config(params), compute_dtype=ctx.dtype,
                                      device=ctx.device)
        AutoHQQHFModel.save_quantized(model, str(dst))
        tokenizer.save_pretrained(dst)
        return {}

    def load(self, path: str, params: dict, ctx):
        from hqq.core.quantize import HQQLinear
        from hqq.models.hf.base import AutoHQQHFModel

        # from_quantized looks for a local folder first (cache_dir ""), so it never reaches the hub.
        model = AutoHQQHFModel.from_quantized(str(path), compute_dtype=ctx.dtype, device=ctx.device)
        return LoadedModel.of(model.eval(), {"kernel": f"hqq-{HQQLinear.backend.name.lower()}-{ctx.device}",
                                             "compute_dtype": str(ctx.dtype).removeprefix("torch.")})

    def dequantize(self, path: str, ctx):
        """The HQQ model with every HQQLinear replaced by a plain Linear holding its dequantized
        weights: the base the adapter trained on, for merging (merge into 'dequant')."""
        import torch
        from hqq.core.quantize import HQQLinear

        model = self.load(path, {}, ctx).model
        for name, module in list(model.named_modules()):
            if isinstance(module, HQQLinear):
                linear = torch.nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                                         device=ctx.device, dtype=ctx.dtype)
                with torch.no_grad():
                    linear.weight.copy_(module.dequantize())
                    if module.bias is not None:
                        linear.bias.copy_(module.bias)
                parent, _, child = name.rpartition(".")
                setattr(model.get_submodule(parent), child, linear)
        for attr in ("hqq_quantized", "base_class"):  # PEFT and save_pretrained then see a plain model
            if hasattr(model, attr):
                delattr(model, attr)
        return model
