"""Quantization backends, registered by name: `get("gptq")` is the Backend (quantbench.backends.base)
that a config's `backend: gptq` runs. The contract (required and optional members, with the
optional ones' defaults) is the Backend class; each module here registers one subclass.
Modules are imported on first use, so that validating a config loads no quantization library."""
from __future__ import annotations

import importlib

from quantbench.backends.base import REGISTRY, Backend

BACKENDS = ("none", "bnb", "gptq", "torchao", "hqq", "awq", "gguf")


def get(name: str) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
    if name not in REGISTRY:
        importlib.import_module(f"quantbench.backends.{name}")
    return REGISTRY[name]


def host_cpu_lane(name: str) -> bool:
    """Whether the backend's jobs run on the host's cores even in a CUDA setup."""
    return get(name).HOST_CPU_LANE


def calibrated(name: str) -> bool:
    """Whether the backend's quantize() calibrates on texts (the workflow then passes them)."""
    return get(name).CALIBRATED
