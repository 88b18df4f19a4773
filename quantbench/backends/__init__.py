"""Quantization backends. Each module exposes the same small interface:

SPEC: {param: allowed values or a type}, validated before any job runs
describe(params) -> str           one line for reports
needs_cuda(params) -> str | None  why the method cannot run without CUDA, or None
bits_per_weight(params) -> float  storage cost of a quantized linear weight
quantize(src, dst, params, ctx) -> dict   write a loadable model folder at dst
load(path, params, ctx) -> (model, info)  load a model folder; info names the kernel that runs
"""
from __future__ import annotations

import importlib

BACKENDS = ("none", "bnb", "gptq")


def get(name: str):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
    return importlib.import_module(f"quantbench.backends.{name}")
