"""Quantization backends. Each module exposes the same small interface:

SPEC: {param: allowed values or a type}, validated before any job runs
describe(params) -> str           one line for reports
needs_cuda(params) -> str | None  why the method cannot run without CUDA, or None
bits_per_weight(params) -> float  storage cost of a quantized linear weight
quantize(src, dst, params, ctx) -> dict   write a loadable model folder at dst
load(path, params, ctx) -> (model, info)  load a model folder; info names the kernel that runs

Optional:
DEFAULTS, LOAD_ONLY               parameter defaults; parameters chosen at load time, not stored
problems(params, model_dims) -> [str]  rules across parameters or against the model's layer
                                  widths, each message starting with the parameter's name
CPU_ALTERNATIVE: str              what to choose instead when needs_cuda() stops a CPU run
unavailable(params) -> str | None why this environment cannot run it (a library not installed)
needs_cpu(params) -> str | None   why the method cannot run on CUDA (checked when device is cuda)
CUDA_ALTERNATIVE: str             what to choose instead when needs_cpu() stops a CUDA run
CALIBRATED: bool                  quantize() reads calibration texts (ctx.calibration_texts)
untrainable(params) -> str | None why PEFT cannot train LoRA on these layers, or None
dequantize(path, ctx) -> model    the quantized weights as a plain model (merge into 'dequant')
"""
from __future__ import annotations

import importlib

BACKENDS = ("none", "bnb", "gptq", "torchao", "hqq", "awq", "gguf")


def calibrated(name: str) -> bool:
    """Whether the backend's quantize() calibrates on texts (the workflow then passes them)."""
    return getattr(get(name), "CALIBRATED", False)


def get(name: str):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
    return importlib.import_module(f"quantbench.backends.{name}")
