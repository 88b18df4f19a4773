"""Peak memory of one measurement: CUDA allocator statistics on the GPU, resident set size on the CPU."""
from __future__ import annotations

import gc
import threading

import torch

PAGE_MB = 4096 / 2**20


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_MB


def reset(device: str) -> None:
    """Free what the last measurement left behind, so one cell's cache does not leak into the next."""
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


class PeakMemory:
    """Context manager: peak memory of the enclosed region, in MB.

    CUDA: max allocated and max reserved since entry. CPU: peak resident set size of the process,
    sampled every millisecond (the CPU allocator keeps no statistics of its own).
    """

    def __init__(self, device: str):
        self.device = device
        self.result: dict = {}

    def __enter__(self):
        reset(self.device)
        if self.device != "cuda":
            self._stop = threading.Event()
            self._peak = _rss_mb()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._peak = max(self._peak, _rss_mb())

    def __exit__(self, *exc):
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.result = {"peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20,
                           "peak_reserved_mb": torch.cuda.max_memory_reserved() / 2**20}
        else:
            self._stop.set()
            self._thread.join()
            self.result = {"peak_memory_mb": max(self._peak, _rss_mb())}
        return False


def model_weights_mb(model) -> float:
    """Bytes of the model's parameters and buffers: what a decode step reads at least once."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total / 2**20
