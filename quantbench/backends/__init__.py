"""Quantization backends, registered by name: `get("gptq")` is the Backend (quantbench.backends.base)
that a config's `backend: gptq` runs. The contract (required and optional members, with the
optional ones' defaults) is the Backend class; each module here registers one subclass, and what
the workflow knows of a backend (its env, report style, whether it can be a re-quantize target, ...)
is an attribute of that class, read here. Modules are imported on first use, so that validating a
config loads no quantization library."""
from __future__ import annotations

import importlib

from quantbench.backends.base import REGISTRY, Backend

# the modules of this package that register a backend, in the order messages and docs list them
BACKENDS = ("none", "bnb", "gptq", "torchao", "hqq", "awq", "gguf", "exl3")
# the backend of the unquantized baseline, which every quality delta is taken against
UNQUANTIZED = "none"


def names() -> tuple[str, ...]:
    """Every backend: this package's, then any registered from another module (a plugin, a test)."""
    return BACKENDS + tuple(n for n in REGISTRY if n not in BACKENDS)


def get(name: str) -> Backend:
    if name in BACKENDS and name not in REGISTRY:
        importlib.import_module(f"quantbench.backends.{name}")
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; allowed: {', '.join(names())}")
    return REGISTRY[name]


def having(fact: str) -> list[str]:
    """The backends whose class sets `fact` (e.g. 'REQUANTIZE_TARGET') true, in names() order."""
    return [n for n in names() if getattr(get(n), fact)]


def host_cpu_lane(name: str, params: dict) -> bool:
    """Whether a method of the backend, with these parameters, runs its jobs on the host's cores even
    in a CUDA setup (Backend.host_cpu_lane)."""
    return get(name).host_cpu_lane(params)


def calibrated(name: str) -> bool:
    """Whether the backend's quantize() calibrates on texts (the workflow then passes them)."""
    return get(name).CALIBRATED
