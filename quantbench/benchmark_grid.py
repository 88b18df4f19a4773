"""The cells of a benchmark grid: which (batch size, new tokens, KV cache) each decode mode measures.
No torch here: the workflow reads the grid when it plans jobs (their runtime requests).
"""
from __future__ import annotations


def cell_batch_sizes(spec: dict, mode: str, new_tokens: int) -> list[int]:
    """Batch sizes of one mode at one length: `fast_batch_sizes` for the static-cache modes,
    `batch_sizes` for eager, narrowed by a `batch_sizes_at` entry for that length if any (long
    eager generations cost minutes per cell)."""
    sizes = spec["batch_sizes"] if mode == "eager" else (spec.get("fast_batch_sizes") or spec["batch_sizes"])
    for entry in spec.get("batch_sizes_at", []):
        if entry["new_tokens"] == new_tokens:
            return [b for b in sizes if b in entry["batch_sizes"]]
    return list(sizes)


def generate_grid(spec: dict, mode: str) -> list[tuple[int, int, bool]]:
    """(batch size, new tokens, use_cache) cells of one mode. use_cache=false runs only at
    `no_cache_new_tokens` (the comparison measured it at 30 new tokens only); the static-cache modes
    need the cache and run at `fast_new_tokens` (default: new_tokens)."""
    if mode == "eager":
        no_cache_at = set(spec.get("no_cache_new_tokens") or spec["new_tokens"])
        return [(b, n, c) for n in spec["new_tokens"] for b in cell_batch_sizes(spec, mode, n)
                for c in spec.get("use_cache", [True]) if c or n in no_cache_at]
    lengths = spec.get("fast_new_tokens") or spec["new_tokens"]
    return [(b, n, True) for n in lengths for b in cell_batch_sizes(spec, mode, n)]


def max_new_tokens(spec: dict) -> int:
    return max(spec["new_tokens"] + list(spec.get("fast_new_tokens") or []))
