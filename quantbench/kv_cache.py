"""A transformers KV cache for a named cache spec, and the bytes it holds, counted from its tensors.

Transformers' QuantizedCache (5.23) offers HQQ (runs on the CPU), quanto (needs optimum-quanto) and
fp8 (float8 e4m3 with one scale per layer's keys and one for its values, frozen at the first update):
each is used as transformers builds it. HQQ's layers keep the last `residual_length` tokens
unquantized and re-quantize everything when that window fills (KIVI's scheme); the tokens of the
forward call that adds them are returned unquantized, so a single full forward attends to its own
chunk's exact keys: later chunks (and decode steps) see the quantized ones.
"""
from __future__ import annotations

import torch

from quantbench.kv_config import KVCache


def make_cache(spec: KVCache | None, model_config):
    """A fresh cache for one pass; None -> transformers' plain DynamicCache."""
    from transformers import DynamicCache, QuantizedCache

    if spec is None:
        return DynamicCache(config=model_config)
    if spec.backend == "fp8":
        return QuantizedCache("fp8", model_config)
    if spec.backend == "hqq":
        p = spec.params
        return QuantizedCache("hqq", model_config, nbits=p["bits"], q_group_size=p["group_size"],
                              residual_length=p["residual_length"], axis_key=p["axis_key"],
                              axis_value=p["axis_value"])
    raise ValueError(f"cache {spec.name!r}: backend {spec.backend!r} does not run in transformers")


def _tensors(obj):
    """Every tensor a cache layer's stored state holds (quantized data, scales, zeros)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for x in obj:
            yield from _tensors(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _tensors(x)


def cache_bytes(cache) -> dict:
    """Bytes a cache holds now, from its layers' stored tensors: quantized keys and values with their
    scales and zeros, and the full-precision part (the residual window, or the whole of a plain cache).
    Each storage is counted once."""
    seen, quantized, full = set(), 0, 0
    for layer in cache.layers:
        parts = [(getattr(layer, "_quantized_keys", None), True), (getattr(layer, "_quantized_values", None), True),
                 (getattr(layer, "keys", None), False), (getattr(layer, "values", None), False)]
        for obj, is_quantized in parts:
            for t in _tensors(obj):
                key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
                if t.numel() == 0 or key in seen:
                    continue
                seen.add(key)
                n = t.untyped_storage().nbytes()
                if is_quantized:
                    quantized += n
                else:
                    full += n
    return {"quantized_bytes": quantized, "full_precision_bytes": full, "total_bytes": quantized + full}
