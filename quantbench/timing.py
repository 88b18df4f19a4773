"""Timing that an engineer can trust: warm-up, repeats, device synchronisation, robust statistics."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object], device: str) -> float:
    """Seconds one call takes. On CUDA, CUDA events bracket the work so queued kernels count."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        _sync(device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def repeat(fn: Callable[[], object], device: str, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    return [time_call(fn, device) for _ in range(repeats)]


def summarize(samples: list[float]) -> dict:
    """Median and spread of timing samples (seconds)."""
    s = sorted(samples)
    q = statistics.quantiles(s, n=4, method="inclusive") if len(s) > 1 else [s[0]] * 3
    med = statistics.median(s)
    return {"median_s": med, "p25_s": q[0], "p75_s": q[2], "min_s": s[0], "max_s": s[-1],
            "iqr_over_median": (q[2] - q[0]) / med if med > 0 else 0.0, "repeats": len(s)}


def measure_copy_bandwidth_gb_per_s(device: str, mb: int = 512, repeats: int = 5) -> float:
    """Device memory bandwidth from a large copy, counting bytes read plus bytes written."""
    n = mb * 2**20 // 4
    src = torch.empty(n, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    times = repeat(lambda: dst.copy_(src), device, warmup=2, repeats=repeats)
    return 2 * src.numel() * 4 / statistics.median(times) / 1e9
