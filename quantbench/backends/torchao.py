"""torchao (PyTorch's own quantization library): int8 weight-only, int8 dynamic activation + int8
weight, and int4 weight-only, applied through transformers' TorchAoConfig and saved with
save_pretrained (safetensors), which reloads to identical logits (tests/test_quantized_logits.py)."""
from __future__ import annotations

from pathlib import Path

from quantbench.backends.base import Backend, register
from quantbench.backends.groups import group_size_problem

# scheme -> (weight bits, runs on the CPU). torchao 0.18 has Config classes only.
SCHEMES = {
    "int8-weight-only": (8, True),     # Int8WeightOnlyConfig: int8 weights, matmul in the compute dtype
    "int8-dynamic": (8, True),         # Int8DynamicActivationInt8WeightConfig: activations too, per token
    "int4-weight-only": (4, False),    # Int4WeightOnlyConfig, tile-packed: CUDA's tinygemm kernel
}
INT4_GROUP_SIZES = [32, 64, 128, 256]  # Int4WeightOnlyConfig's documented choices
SPEC = {"scheme": list(SCHEMES), "group_size": int}
DEFAULTS = {"group_size": -1}
CPU_ALTERNATIVE = "scheme int8-weight-only or int8-dynamic"


def _dtype(params: dict, ctx):
    import torch

    # The tile-packed int4 kernel computes in bf16 only.
    return torch.bfloat16 if params["scheme"] == "int4-weight-only" else ctx.dtype


def quantization_config(params: dict):
    from torchao.quantization import Int4WeightOnlyConfig, Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig
    from transformers import TorchAoConfig

    scheme = params["scheme"]
    if scheme == "int8-weight-only":
        config = Int8WeightOnlyConfig()
    elif scheme == "int8-dynamic":
        config = Int8DynamicActivationInt8WeightConfig()
    else:
        config = Int4WeightOnlyConfig(group_size=params["group_size"], int4_packing_format="tile_packed_to_4d")
    return TorchAoConfig(quant_type=config)


def kernel_names(model) -> list[str]:
    from torchao.utils import TorchAOBaseTensor

    return sorted({type(p).__name__ for p in model.parameters() if isinstance(p, TorchAOBaseTensor)})


@register("torchao")
class TorchAO(Backend):
    SPEC = SPEC
    DEFAULTS = DEFAULTS
    CPU_ALTERNATIVE = CPU_ALTERNATIVE
    REQUIRED = ("scheme",)
    DESCRIPTIONS = {
        "scheme": "int8-weight-only, int8-dynamic (activations too, per token) or int4-weight-only (CUDA)",
        "group_size": "int4-weight-only: weights sharing one scale (-1, the int8 schemes: one per row)",
    }

    def describe(self, params: dict) -> str:
        g = params["group_size"]
        return f"torchao {params['scheme']}" + (f", group {g}" if g > 0 else ", per row")

    def needs_cuda(self, params: dict) -> str | None:
        if not SCHEMES[params["scheme"]][1]:
            # The default int4 packing needs the `mslk` kernels; the tile-packed one runs on CUDA only.
            return f"torchao scheme {params['scheme']!r} runs on CUDA only (tile-packed int4 kernel)"
        return None

    def problems(self, params: dict, model_dims: list[int] | None) -> list[str]:
        g = params["group_size"]
        if params["scheme"] == "int4-weight-only":
            why = group_size_problem(g, model_dims, per_row=False, choices=INT4_GROUP_SIZES)
            return [f"group_size: {why} (scheme int4-weight-only)"] if why else []
        if g != -1:  # torchao's int8 kernels use one scale per output row
            return [f"group_size: {g} is not supported by scheme {params['scheme']!r}; allowed: -1 (one scale per row)"]
        return []

    def bits_per_weight(self, params: dict) -> float:
        bits = SCHEMES[params["scheme"]][0]
        if params["group_size"] > 0:
            # int4 tile-packed: per group one bf16 scale and one bf16 zero point.
            return bits + 32 / params["group_size"]
        # Per row: one scale (and an int8 zero point) per output row, which depends on the layer's
        # width (<0.1 bit at widths >= 576); counted as 8 bits, as bitsandbytes' LLM.int8() is.
        return float(bits)

    def quantize(self, src: str, dst: Path, params: dict, ctx) -> dict:
        from transformers import AutoModelForCausalLM

        from quantbench.modelio import load_tokenizer

        model = AutoModelForCausalLM.from_pretrained(src, quantization_config=quantization_config(params),
                                                     dtype=_dtype(params, ctx), device_map=ctx.device)
        model.save_pretrained(dst)
        load_tokenizer(src).save_pretrained(dst)
        return {}

    def load(self, path: str, params: dict, ctx):
        from transformers import AutoModelForCausalLM

        dtype = _dtype(params, ctx)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=ctx.device)
        info = {"kernel": f"torchao-{params['scheme']}-{ctx.device}",
                "weight_tensors": "+".join(kernel_names(model)),
                "compute_dtype": str(dtype).removeprefix("torch.")}
        return model.eval(), info

    def dequantize(self, path: str, ctx):
        """The model with every torchao weight replaced by its dequantized values in a plain
        Parameter: the base the adapter trained on, for merging (merge into 'dequant')."""
        import torch
        from torchao.utils import TorchAOBaseTensor

        from quantbench.modelio import read_meta

        model, _ = self.load(path, read_meta(path)["params"], ctx)
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, TorchAOBaseTensor):
                module.weight = torch.nn.Parameter(weight.dequantize().to(ctx.dtype), requires_grad=False)
        return model

    def untrainable(self, params: dict) -> str | None:
        """Why PEFT cannot train LoRA on these layers, or None."""
        if params["scheme"] == "int4-weight-only":
            return "PEFT 0.21's torchao LoRA layer supports int8 weights only (it raises on Int4 tensors)"
        return None
