"""torchao (PyTorch's own quantization library): int8 weight-only, int8 dynamic activation + int8
weight, int4 weight-only, float8 weight-only and float8 dynamic activation + float8 weight, applied
through transformers' TorchAoConfig and saved with save_pretrained (safetensors), which reloads to
identical logits (tests/test_quantized_logits.py)."""
from __future__ import annotations

from pathlib import Path

from quantbench import cuda_capability
from quantbench.backends.base import Backend, register
from quantbench.backends.groups import group_size_problem
from quantbench.loaded_model import LoadedModel

# scheme -> (weight bits, runs on the CPU). torchao 0.18 has Config classes only.
SCHEMES = {
    "int8-weight-only": (8, True),     # Int8WeightOnlyConfig: int8 weights, matmul in the compute dtype
    "int8-dynamic": (8, True),         # Int8DynamicActivationInt8WeightConfig: activations too, per token
    "int4-weight-only": (4, False),    # Int4WeightOnlyConfig, tile-packed: CUDA's tinygemm kernel
    # Float8WeightOnlyConfig: float8 e4m3 weights, one fp32 scale per row; the linear dequantizes them
    # and multiplies in the compute dtype, on any device (CPU included).
    "float8-weight-only": (8, True),
    # Float8DynamicActivationFloat8WeightConfig: activations quantized to float8 e4m3 at run time too,
    # the matmul in float8 through torch._scaled_mm; torchao refuses to quantize without CUDA 8.9+.
    "float8-dynamic": (8, False),
}
FLOAT8_SCHEMES = ("float8-weight-only", "float8-dynamic")
# torch._scaled_mm's float8 matmul exists from Ada (sm_89) on; the weight-only scheme never calls it.
FLOAT8_MATMUL_CAPABILITY = (8, 9)
GRANULARITIES = ["per-row", "per-tensor"]  # float8-dynamic: one scale per row (and per token), or one per tensor
# Float8 matmuls (torch._scaled_mm) take operands whose widths are multiples of 16; torchao leaves any
# other linear layer unquantized without a word.
FLOAT8_WIDTH_MULTIPLE = 16
INT4_GROUP_SIZES = [32, 64, 128, 256]  # Int4WeightOnlyConfig's documented choices
SPEC = {"scheme": list(SCHEMES), "group_size": int, "granularity": GRANULARITIES}
# No granularity default here: a default would be a new parameter of every torchao method, and so
# rerun every int8/int4 job; float8-dynamic reads it with granularity().
DEFAULTS = {"group_size": -1}
CPU_ALTERNATIVE = "scheme int8-weight-only, int8-dynamic or float8-weight-only"


def granularity(params: dict) -> str | None:
    """float8-dynamic's scale granularity ('per-row' unless set); None for the other schemes."""
    return params.get("granularity", "per-row") if params["scheme"] == "float8-dynamic" else None


def _dtype(params: dict, ctx):
    import torch

    # The tile-packed int4 kernel computes in bf16 only; torchao's float8 per-row matmul takes bf16
    # weights only (it asserts so), and per-tensor computes in bf16 too so the two compare.
    return torch.bfloat16 if params["scheme"] in ("int4-weight-only", "float8-dynamic") else ctx.dtype


def quantization_config(params: dict):
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Float8WeightOnlyConfig,
        Int4WeightOnlyConfig,
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
        PerRow,
        PerTensor,
    )
    from transformers import TorchAoConfig

    scheme = params["scheme"]
    if scheme == "int8-weight-only":
        config = Int8WeightOnlyConfig()
    elif scheme == "int8-dynamic":
        config = Int8DynamicActivationInt8WeightConfig()
    elif scheme == "float8-weight-only":
        config = Float8WeightOnlyConfig()  # e4m3, PerRow: one scale per output row
    elif scheme == "float8-dynamic":
        # One granularity for activations and weights (torchao takes no mix of the two).
        config = Float8DynamicActivationFloat8WeightConfig(
            granularity=PerRow() if granularity(params) == "per-row" else PerTensor())
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
        "scheme": "int8-weight-only, int8-dynamic (activations too, per token), int4-weight-only (CUDA), "
                  "float8-weight-only (float8 e4m3 weights, any device) or float8-dynamic (float8 activations "
                  "too; CUDA compute capability 8.9+)",
        "group_size": "int4-weight-only: weights sharing one scale (-1, the int8 and float8 schemes: one per row)",
        "granularity": "float8-dynamic: one scale per row and per token (per-row, the default) or one per tensor "
                       "(per-tensor)",
    }
    LABEL = "torchao"
    COLOR = "#bcbd22"
    MARKER = "X"
    REQUANTIZE_TARGET = True
    SENSITIVITY = True
    QUANTIZE_MINUTES = (10, 5)

    def describe(self, params: dict) -> str:
        g = params["group_size"]
        if params["scheme"] == "float8-dynamic":
            return f"torchao float8-dynamic, {granularity(params).replace('-', ' ')}"
        return f"torchao {params['scheme']}" + (f", group {g}" if g > 0 else ", per row")

    def needs_cuda(self, params: dict) -> str | None:
        if params["scheme"] == "float8-dynamic":
            return ("torchao scheme 'float8-dynamic' runs on CUDA only (float8 matmul through torch._scaled_mm; "
                    "torchao refuses to quantize without CUDA compute capability 8.9+)")
        if not SCHEMES[params["scheme"]][1]:
            # The default int4 packing needs the `mslk` kernels; the tile-packed one runs on CUDA only.
            return f"torchao scheme {params['scheme']!r} runs on CUDA only (tile-packed int4 kernel)"
        return None

    def min_cuda_capability(self, params: dict) -> tuple[int, int] | None:
        return FLOAT8_MATMUL_CAPABILITY if params["scheme"] == "float8-dynamic" else None

    def problems(self, params: dict, model_dims: list[int] | None) -> list[str]:
        g = params["group_size"]
        if "granularity" in params and params["scheme"] != "float8-dynamic":
            return [f"granularity: {params['granularity']!r} is not a parameter of scheme {params['scheme']!r}; "
                    "allowed: granularity with scheme float8-dynamic only (the other schemes keep one scale per "
                    "row, or per group for int4)"]
        if params["scheme"] == "float8-dynamic" and model_dims:
            odd = sorted({d for d in model_dims if d % FLOAT8_WIDTH_MULTIPLE})
            if odd:
                return [f"scheme: 'float8-dynamic' needs layer widths that are multiples of {FLOAT8_WIDTH_MULTIPLE} "
                        f"(torch._scaled_mm), and this model has {', '.join(map(str, odd))}; allowed: another "
                        "scheme, e.g. float8-weight-only"]
        if params["scheme"] == "int4-weight-only":
            why = group_size_problem(g, model_dims, per_row=False, choices=INT4_GROUP_SIZES)
            return [f"group_size: {why} (scheme int4-weight-only)"] if why else []
        if g != -1:  # torchao's int8 kernels use one scale per output row
            return [f"group_size: {g} is not supported by scheme {params['scheme']!r}; allowed: -1 (one scale per row)"]
        return []

    def nominal_bits(self, params: dict) -> float | None:
        if not params.get("scheme"):  # int8-weight-only, int4-weight-only, float8-dynamic, ...
            return None
        return 4.0 if params["scheme"].startswith("int4") else 8.0

    def bits_per_weight(self, params: dict) -> float:
        bits = SCHEMES[params["scheme"]][0]
        if params["group_size"] > 0:
            # int4 tile-packed: per group one bf16 scale and one bf16 zero point.
            return bits + 32 / params["group_size"]
        # Per row: one scale (and an int8 zero point) per output row, which depends on the layer's
        # width (<0.1 bit at widths >= 576); counted as 8 bits, as bitsandbytes' LLM.int8() is. Float8:
        # one fp32 scale per row (or per tensor), counted the same way.
        return float(bits)

    def quantize(self, src: str, dst: Path, params: dict, ctx) -> dict:
        from transformers import AutoModelForCausalLM

        from quantbench.modelio import load_tokenizer

        self._check_node(params, ctx)
        model = AutoModelForCausalLM.from_pretrained(src, quantization_config=quantization_config(params),
                                                     dtype=_dtype(params, ctx), device_map=ctx.device)
        model.save_pretrained(dst)
        load_tokenizer(src).save_pretrained(dst)
        return {}

    def load(self, path: str, params: dict, ctx):
        from transformers import AutoModelForCausalLM

        self._check_node(params, ctx)
        dtype = _dtype(params, ctx)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=ctx.device)
        scheme = params["scheme"] + (f"-{granularity(params)}" if granularity(params) else "")
        info = {"kernel": f"torchao-{scheme}-{ctx.device}",
                "weight_tensors": "+".join(kernel_names(model)),
                "compute_dtype": str(dtype).removeprefix("torch.")}
        return LoadedModel.of(model.eval(), info)

    def dequantize(self, path: str, ctx):
        """The model with every torchao weight replaced by its dequantized values in a plain
        Parameter: the base the adapter trained on, for merging (merge into 'dequant')."""
        import torch
        from torchao.utils import TorchAOBaseTensor

        from quantbench.modelio import read_meta

        model = self.load(path, read_meta(path)["params"], ctx).model
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, TorchAOBaseTensor):
                module.weight = torch.nn.Parameter(weight.dequantize().to(ctx.dtype), requires_grad=False)
        return model

    def _check_node(self, params: dict, ctx) -> None:
        # Validation on a host that plans for GPUs elsewhere cannot see the node's GPU: the job can.
        cuda_capability.check_node(self.min_cuda_capability(params), ctx.device, f"torchao scheme {params['scheme']!r}")

    def untrainable(self, params: dict) -> str | None:
        """Why PEFT cannot train LoRA on these layers, or None."""
        if params["scheme"] == "int4-weight-only":
            return "PEFT 0.21's torchao LoRA layer supports int8 weights only (it raises on Int4 tensors)"
        if params["scheme"] == "float8-dynamic":
            # torchao quantizes it only on a CUDA 8.9+ GPU, so LoRA through its float8 matmul is not
            # verified here; the weight-only scheme's LoRA training is (tests/test_fp8.py).
            return ("LoRA on torchao float8-dynamic layers is not verified (torchao 0.18 documents it for inference "
                    "and its float8 matmul needs a CUDA 8.9+ GPU); allowed as a float8 fine-tune base: "
                    "float8-weight-only")
        return None
