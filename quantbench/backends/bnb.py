"""bitsandbytes: LLM.int8() and 4-bit NF4/FP4 (QLoRA), serialized with save_pretrained."""
from __future__ import annotations

from pathlib import Path

from quantbench.backends.base import Backend, register
from quantbench.loaded_model import LoadedModel

SPEC = {"bits": [4, 8], "quant_type": ["nf4", "fp4"], "double_quant": [True, False],
        "compute_dtype": ["auto", "float32", "float16", "bfloat16"]}
DEFAULTS = {"quant_type": "nf4", "double_quant": True, "compute_dtype": "auto"}
BLOCKSIZE_4BIT = 64  # bitsandbytes' 4-bit blockwise quantization block


def quantization_config(params: dict, device: str):
    from transformers import BitsAndBytesConfig

    from quantbench.modelio import torch_dtype

    if params["bits"] == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = params["compute_dtype"]
    if compute == "auto":
        compute = "float16" if device == "cuda" else "float32"
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=params["quant_type"],
                              bnb_4bit_use_double_quant=params["double_quant"],
                              bnb_4bit_compute_dtype=torch_dtype(compute))


def disable_cpu_bf16_fast_path(model) -> None:
    """bitsandbytes' AVX512-BF16 CPU path computes in bf16 whatever dtype was asked for, so results
    would depend on the CPU model; turn it off for comparable numbers."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


@register("bnb")
class BitsAndBytes(Backend):
    SPEC = SPEC
    DEFAULTS = DEFAULTS
    REQUIRED = ("bits",)
    DESCRIPTIONS = {
        "bits": "8: LLM.int8() (outlier columns kept in 16 bits); 4: 4-bit blockwise (QLoRA)",
        "quant_type": "4-bit code book: nf4 (normal float) or fp4",
        "double_quant": "4-bit: quantize the blocks' scales too (QLoRA's double quantization)",
        "compute_dtype": "4-bit: dtype of the matmul after dequantizing (auto: float16 on cuda, float32 on cpu)",
    }
    LABEL = "bitsandbytes"
    ENGINES = {"vllm": "its bitsandbytes checkpoint, through vLLM's bitsandbytes loader"}
    COLOR = "#1f77b4"
    MARKER = "s"
    SENSITIVITY = True
    QUANTIZE_MINUTES = (10, 3)

    def describe(self, params: dict) -> str:
        if params["bits"] == 8:
            return "bitsandbytes LLM.int8()"
        dq = "+double-quant" if params["double_quant"] else ""
        return f"bitsandbytes {params['quant_type']}{dq}"

    def needs_cuda(self, params: dict) -> str | None:
        return None  # bitsandbytes >= 0.48 runs int8 and 4-bit on the CPU

    def bits_per_weight(self, params: dict) -> float:
        if params["bits"] == 8:
            return 8.0
        # One absmax per block: fp32 (32 bits) or, with double quantization, an 8-bit code plus a
        # second-level fp32 constant per 256 blocks (Dettmers et al. 2023, QLoRA, section 3).
        absmax_bits = 8 + 32 / 256 if params["double_quant"] else 32
        return 4 + absmax_bits / BLOCKSIZE_4BIT

    def quantize(self, src: str, dst: Path, params: dict, ctx) -> dict:
        from transformers import AutoModelForCausalLM

        from quantbench.modelio import load_tokenizer

        model = AutoModelForCausalLM.from_pretrained(
            src, quantization_config=quantization_config(params, ctx.device),
            device_map=ctx.device, dtype=ctx.dtype)
        # Saved before any forward pass: on CPUs with AVX512-BF16, inference first corrupts the
        # 4-bit scales that save_pretrained then writes (see PITFALLS).
        model.save_pretrained(dst)
        load_tokenizer(src).save_pretrained(dst)
        return {}

    def load(self, path: str, params: dict, ctx):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path, device_map=ctx.device, dtype=ctx.dtype)
        if ctx.device == "cpu":
            disable_cpu_bf16_fast_path(model)
        kernel = "bnb-int8" if params["bits"] == 8 else f"bnb-{params['quant_type']}"
        return LoadedModel(model, f"{kernel}-{ctx.device}")

    def quantize_encoder(self, src: str, dst: Path, params: dict, device: str, calibration: list, seq_len: int,
                         text: bool) -> dict:
        import bitsandbytes as bnb
        from transformers import AutoModel

        model = AutoModel.from_pretrained(src, quantization_config=quantization_config(params, device),
                                          device_map=device)
        # Saved before any forward pass (AVX512-BF16 CPUs corrupt 4-bit scales otherwise; PITFALLS).
        model.save_pretrained(dst)
        quantized = sum(isinstance(m, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)) for m in model.modules())
        return {"quantized_linear_layers": quantized}

    def load_encoder(self, folder: str, params: dict, device: str, route: str | None = None):
        from transformers import AutoModel

        model = AutoModel.from_pretrained(folder, device_map=device)
        if device == "cpu":
            disable_cpu_bf16_fast_path(model)
        return model, f"bnb-{'int8' if params['bits'] == 8 else params['quant_type']}-{device}"

    def dequantize(self, path: str, ctx):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path, device_map=ctx.device, dtype=ctx.dtype)
        return model.dequantize(dtype=ctx.dtype)
