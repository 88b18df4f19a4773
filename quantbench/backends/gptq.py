"""GPTQ through GPTQModel (the maintained successor of AutoGPTQ): calibrated post-training
quantization, with the inference kernel chosen explicitly and recorded."""
from __future__ import annotations

from pathlib import Path

from quantbench import gptqmodel_run
from quantbench.backends.base import Backend, register
from quantbench.backends.groups import bits_with_group_scales, group_size_problem
from quantbench.loaded_model import LoadedModel

# kernel name in the config -> (GPTQModel backend, bits it supports, runs on CPU)
# Bits per kernel are the kernels' own SUPPORTS_BITS in gptqmodel 7.6.
KERNELS = {
    "torch": ("gptq_torch", [2, 3, 4, 5, 6, 7, 8], True),
    "triton": ("gptq_triton", [2, 4, 8], False),
    "marlin": ("gptq_marlin", [4, 8], False),
    "exllama_v2": ("gptq_exllama_v2", [4], False),
}
SPEC = {"bits": [2, 3, 4, 8], "group_size": int, "desc_act": [True, False], "sym": [True, False],
        "kernel": list(KERNELS), "damp_percent": float, "mix": dict, "lm_head": [True, False]}
# mix: more bits for some layers (quantbench/mixed_precision.py): {high_bits, rule: kquant} or
# {high_bits, budget_bits: <bits, kquant or a method>, unit: block|projection|cell} (rule sensitivity, the
# default); bits per weight as stored in the files (scales, zero points and indices included)
MIX_RULES = ("sensitivity", "kquant")
MIX_KEYS = ("high_bits", "rule", "budget_bits", "unit")
# Chosen when the checkpoint is loaded, not stored in it: methods differing only here share one.
LOAD_ONLY = {"kernel"}
DEFAULTS = {"group_size": 128, "desc_act": False, "sym": True, "kernel": "torch", "damp_percent": 0.05}
CPU_ALTERNATIVE = "kernel torch"
CALIBRATED = True  # quantize() needs ctx.calibration_texts
# kernel -> GPTQModel JIT extension it builds on first use (the benchmark builds it before timing)
JIT = {"marlin": "marlin", "exllama_v2": "exllamav2"}


def quantize_config(params: dict, device: str = "cpu", dynamic: dict | None = None):
    from gptqmodel import QuantizeConfig

    # On CUDA: pack on the GPU (the default packs on the CPU, single-threaded under the GIL) and
    # keep finished layers in memory instead of offloading them to disk and back.
    fast = {"pack_impl": "gpu", "offload_to_disk": False} if device == "cuda" else {}
    return QuantizeConfig(bits=params["bits"], group_size=params["group_size"],
                          desc_act=params["desc_act"], sym=params["sym"],
                          damp_percent=params["damp_percent"], lm_head=params.get("lm_head", False),
                          **fast, **({"dynamic": dynamic} if dynamic else {}))


def head_can_be_quantized(src: str) -> None:
    """GPTQModel quantizes an output head only where it is not the input embedding's table."""
    import json

    config = json.loads((Path(src) / "config.json").read_text())
    if config.get("tie_word_embeddings"):
        raise ValueError(f"lm_head: true, but the output head of {src} is tied to its input embedding "
                         "(tie_word_embeddings: true), which GPTQModel does not quantize; "
                         "allowed: false for this model")


def mix_problems(params: dict) -> list[str]:
    """A `mix:` entry's own rules, each message naming the key."""
    from quantbench.layer_groups import FAMILIES

    mix = params.get("mix")
    if mix is None:
        return []
    out = [f"mix.{k}: unknown key; allowed: {', '.join(MIX_KEYS)}" for k in mix if k not in MIX_KEYS]
    allowed = KERNELS[params["kernel"]][1]
    high = mix.get("high_bits")
    if high not in allowed or high <= params["bits"]:
        out.append(f"mix.high_bits: {high!r} must be a width of kernel {params['kernel']!r} above bits "
                   f"{params['bits']}; allowed: {', '.join(str(b) for b in allowed if b > params['bits']) or 'none'}")
    rule = mix.get("rule", "sensitivity")
    if rule not in MIX_RULES:
        out.append(f"mix.rule: {rule!r} is not a mixing rule; allowed: {', '.join(MIX_RULES)}")
    elif rule == "sensitivity":
        budget = mix.get("budget_bits")
        if not isinstance(budget, (int, float, str)) or isinstance(budget, bool):
            out.append(f"mix.budget_bits: {budget!r} must be bits per weight (a number), kquant (the size the "
                       "kquant rule gives) or a method's name (the size its file measures)")
        elif isinstance(budget, (int, float)) and isinstance(high, int):
            lo, hi = (bits_with_group_scales(b, params["group_size"]) for b in (params["bits"], high))
            if not lo < budget < hi:
                out.append(f"mix.budget_bits: {budget} is outside what bits {params['bits']} and high_bits {high} "
                           f"can store; allowed: above {lo:.3f} (every layer at {params['bits']} bits, scales "
                           f"included) and below {hi:.3f}")
        if mix.get("unit", "cell") not in FAMILIES:
            out.append(f"mix.unit: {mix.get('unit')!r} is not a sensitivity group; allowed: {', '.join(FAMILIES)}")
    elif "budget_bits" in mix or "unit" in mix:
        out.append("mix.budget_bits, mix.unit: only for rule sensitivity (kquant places its bits itself)")
    return out


def kernel_names(model) -> list[str]:
    from gptqmodel.nn_modules.qlinear import BaseQuantLinear

    return sorted({type(m).__name__ for m in model.modules() if isinstance(m, BaseQuantLinear)})


def _eager_dequantize(model) -> int:
    """Undo the torch.compile that GPTQModel's torch kernel applies to its dequantization: on the
    CPU, inductor compiles it again in every process (5-15 s per shape, longer than the toy's whole
    benchmark) and the eager version is as fast at these sizes."""
    from gptqmodel.nn_modules.qlinear import BaseQuantLinear

    n = 0
    for m in model.modules():
        if isinstance(m, BaseQuantLinear) and "dequantize_weight" in m.__dict__:
            del m.dequantize_weight  # the instance attribute shadows the class's eager method
            n += 1
    return n


@register("gptq")
class GPTQ(Backend):
    SPEC = SPEC
    DEFAULTS = DEFAULTS
    LOAD_ONLY = frozenset(LOAD_ONLY)
    CALIBRATED = CALIBRATED
    CPU_ALTERNATIVE = CPU_ALTERNATIVE
    REQUIRED = ("bits",)
    DESCRIPTIONS = {
        "bits": "bits per weight of the quantized linear layers",
        "group_size": "weights sharing one scale and zero point; divides every layer's input width (-1: one per row)",
        "desc_act": "quantize columns in order of decreasing activation size (act-order)",
        "sym": "symmetric grid (no zero point)",
        "kernel": "GPTQModel's inference kernel (torch runs on the CPU too)",
        "damp_percent": "dampening added to the Hessian's diagonal, as a fraction of its mean",
        "mix": "more bits for some layers: {high_bits, rule: kquant} or {high_bits, budget_bits, unit} "
               "(quantbench/mixed_precision.py)",
        "lm_head": "also quantize the output head, at GPTQModel's own setting for it (8 bits, group 32, "
                   "symmetric); a model whose head is tied to its input embedding cannot (default: false)",
    }
    LABEL = "GPTQ"
    ENGINES = {"vllm": "its GPTQ checkpoint, through vLLM's gptq_marlin (or gptq) kernel"}
    COLOR = "#ff7f0e"
    MARKER = "^"
    REQUANTIZE_TARGET = True
    SENSITIVITY = True
    GPTQMODEL_LAYERS = True
    QUANTIZE_MINUTES = (20, 20)

    def describe(self, params: dict) -> str:
        return (f"GPTQ {params['bits']}-bit, group {params['group_size']}, "
                f"desc_act={params['desc_act']}, kernel {params['kernel']}")

    def needs_cuda(self, params: dict) -> str | None:
        if not KERNELS[params["kernel"]][2]:
            return f"GPTQ kernel {params['kernel']!r} runs on CUDA only"
        return None

    def problems(self, params: dict, model_dims: list[int] | None) -> list[str]:
        out = []
        allowed = KERNELS[params["kernel"]][1]
        if params["bits"] not in allowed:
            out.append(f"bits: {params['bits']} is not supported by GPTQ kernel {params['kernel']!r}; "
                       f"allowed: {', '.join(map(str, allowed))} (or another kernel)")
        damp = params.get("damp_percent")
        if isinstance(damp, float) and not 0 < damp < 1:  # GPTQModel's QuantizeConfig raises otherwise
            out.append(f"damp_percent: {damp} is out of range; allowed: 0 < damp_percent < 1 "
                       "(a fraction of the Hessian's mean diagonal)")
        why = group_size_problem(params["group_size"], model_dims)
        if why:
            out.append(f"group_size: {why}")
        return out + mix_problems(params)

    def jit_extension(self, params: dict, dtype_name: str) -> str | None:
        ext = JIT.get(params["kernel"])
        if ext == "marlin":  # one build per activation dtype
            # one build per activation dtype; a float32 run computes in bfloat16 on CUDA (load)
            return "marlin_fp16" if dtype_name == "float16" else "marlin_bf16"
        return ext

    def bits_per_weight(self, params: dict) -> float:
        # a mix's average depends on the model's layers: the budget here, the quantize record has the
        # allocation's own figure and the file's
        budget = (params.get("mix") or {}).get("budget_bits")
        if isinstance(budget, (int, float)):
            return float(budget)
        return bits_with_group_scales(params["bits"], params["group_size"])

    def quantize(self, src: str, dst: Path, params: dict, ctx) -> dict:
        from quantbench import mixed_precision, stored_bits
        from quantbench.modelio import load_tokenizer

        if params.get("lm_head"):  # a model folder the config check could not read (a hub id not cached yet)
            head_can_be_quantized(src)
        shapes = stored_bits.block_linear_shapes(src)
        mix = mixed_precision.plan(params, shapes, ctx.sensitivity, stored_bits.gptq_layer_bits, ctx.size_of) \
            if params.get("mix") else None
        tokenizer = load_tokenizer(src)
        rows = gptqmodel_run.calibration_rows(tokenizer, ctx.calibration_texts, ctx.calibration_seq_len)
        qconfig = quantize_config(params, ctx.device, mix and mixed_precision.gptq_dynamic(mix["allocation"],
                                                                                           params["bits"]))
        model = gptqmodel_run.quantized(src, qconfig, rows, ctx.device,
                                        ctx.calibration_seq_len, ctx.calibration_batch_size, dtype=ctx.dtype)
        model.save(str(dst))
        tokenizer.save_pretrained(dst)
        out = {"calibration_samples": len(rows),
               "measured_bits_per_weight": stored_bits.gptq_bits_per_weight(dst, stored_bits.block_linear_weights(src))}
        if mix:
            out["mix"] = {k: v for k, v in mix.items() if k != "allocation"}
            # the scheme's nominal figure (bits_per_weight's formula), beside what the files store
            weights = stored_bits.block_linear_weights(src)
            out["mix"]["nominal_average_bits"] = mixed_precision.average_bits(
                mix["allocation"], weights, lambda _, b: bits_with_group_scales(b, params["group_size"]))
            out["mix"]["layers_at_high_bits"] = sorted(n for n, b in mix["allocation"].items() if b != params["bits"])
        return out

    def load(self, path: str, params: dict, ctx):
        gptqmodel_run.environment()
        import torch
        from gptqmodel import GPTQModel

        backend = KERNELS[params["kernel"]][0]
        # GPTQModel loads in 16-bit only. A float32 run on the CPU (the default there) loads in fp16,
        # which keeps the checkpoint's fp16 scales exact, then computes in float32: the torch kernel
        # dequantizes into the scales' dtype and matmuls in the input's. Measured on SmolLM2-135M,
        # 2 cores: 309 tokens/s in float32 against 6 in bf16 on an AMD EPYC without AVX512-BF16
        # (bf16 matmuls there run 6.6x slower than fp32), and the same numbers on every CPU.
        upcast = ctx.device == "cpu" and ctx.dtype == torch.float32
        sixteen = ctx.dtype if ctx.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
        dtype = torch.float16 if upcast else sixteen
        wrapper = GPTQModel.load(path, device=ctx.device, backend=backend, dtype=dtype)
        model = wrapper.model
        if upcast:
            model = model.to(torch.float32)  # floating-point tensors only: packed int32 weights stay
            dtype = torch.float32
        info = {"kernel": "+".join(kernel_names(model)), "gptq_backend": backend,
                "compute_dtype": str(dtype).removeprefix("torch.")}
        if ctx.device == "cpu":
            info["eager_dequantize_layers"] = _eager_dequantize(model)
        return LoadedModel.of(model, info)

    def quantize_encoder(self, src: str, dst: Path, params: dict, device: str, calibration: list, seq_len: int,
                         text: bool) -> dict:
        from quantbench.backends.gptq_encoder import gptq_encoder  # GPTQModel first, then transformers' GPTQConfig

        return gptq_encoder(src, dst, params, device, calibration, seq_len, text, quantize_config(params, device))

    def load_encoder(self, folder: str, params: dict, device: str, route: str | None = None):
        from transformers import AutoModel

        if route == "transformers-gptqconfig":
            model = AutoModel.from_pretrained(folder, device_map=device)
        else:
            gptqmodel_run.environment()
            from gptqmodel import GPTQModel

            model = GPTQModel.load(folder, device=device, backend=KERNELS[params["kernel"]][0]).model
        return model, "+".join(kernel_names(model))
