"""What each variant is, for the figures: its family (the scheme that serves it, or its place in the
fine-tuning recipe) and its bit width, read from the records' parameters rather than from names."""
from __future__ import annotations

import pandas as pd

from quantbench import backends
from quantbench.backends import UNQUANTIZED
from quantbench.experiment import parse_variant

DTYPE_BITS = {"float32": 32, "float16": 16, "bfloat16": 16}


def _method_bits(method: dict) -> float | None:
    params = method.get("params", {})
    if params.get("bits") is not None:
        return float(params["bits"])
    if method.get("backend") in backends.names():
        bits = backends.get(method["backend"]).nominal_bits(params)
        if bits is not None:
            return bits
    return DTYPE_BITS.get(params.get("dtype"))


def _family(backend: str | None, variant: str) -> str:
    shape = parse_variant(variant)
    # a fine-tuned model answers the recipe's question, not the scheme's: it gets its own family
    if shape.requant:
        return "recipe"
    if shape.merge:
        return "merged"
    if shape.lora:
        return "lora"
    return "fp" if backend in (None, UNQUANTIZED) else backend


def variant_table(records: list[dict]) -> pd.DataFrame:
    """One row per variant with a record: variant, family, backend, method, bits (nominal: the
    scheme's bit width or the float dtype's)."""
    methods = {}  # method name -> its parameters, from the quantize records
    served = {}   # variant -> the method that serves it
    for r in records:
        if r["stage"] == "quantize":
            method = r["params"]["method"]
            methods.setdefault(method["name"], method)
            served[r["subject"]] = method["name"]
            methods.setdefault(r["subject"], method)  # a re-quantized variant's record holds its method
        elif r["stage"] == "benchmark" and r.get("load", {}).get("method"):
            served.setdefault(r["subject"], r["load"]["method"])
    subjects = dict.fromkeys(r["subject"] for r in records if r["stage"] in ("benchmark", "evaluate", "finetune"))
    rows = []
    for variant in subjects:
        method = methods.get(served.get(variant) or parse_variant(variant).base, {})
        rows.append({"variant": variant, "backend": method.get("backend"), "method": method.get("name"),
                     "family": _family(method.get("backend"), variant), "bits": _method_bits(method)})
    return pd.DataFrame(rows, columns=["variant", "backend", "method", "family", "bits"])
