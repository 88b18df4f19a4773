"""What a benchmark does to its own process so that an eager cell times the GPU and the decode loop,
not the host's scheduler.

An eager decode step of a 7B model on a Hopper GPU is host-bound (~20 ms of Python and kernel
launches per token at batch 1, against ~5 ms when the step is one CUDA graph), so the host's jitter
is the cell's jitter. Three causes the benchmark can remove itself (the GPU's clocks it leaves alone):
- the scheduler moving the launching thread between cores (cold caches, another core's frequency):
  the process is pinned to a few cores of the ones it may use, chosen by its GPU's index so two
  benchmarks on two GPUs of one host do not share them; PyTorch's CPU threads follow that count;
- Python's cyclic garbage collector pausing a timed call (generate allocates thousands of objects per
  call): run once before a cell's timed calls and off while they run (as `timeit` keeps it off);
- too few calls for a quartile: with 3 calls IQR/median is half the range, so one slow call puts a
  cell above the spread limit. A cheap cell is called until it has run `min_timed_s` seconds, up to
  `max_repeats` calls.
What was done is returned as a dict for the record."""
from __future__ import annotations

import gc
import os
from contextlib import contextmanager

import torch


def pin(device: str, cores: int) -> dict:
    """Pin this process to `cores` cores (0: leave it) and set PyTorch's CPU threads to match; only
    on CUDA, where CPU threads launch work rather than do it."""
    allowed = sorted(os.sched_getaffinity(0))
    if device != "cuda" or cores <= 0 or cores >= len(allowed):
        return {"pinned_cores": None, "allowed_cores": len(allowed), "torch_threads": torch.get_num_threads()}
    # the physical GPU (quantbench.gpu_slot narrows CUDA_VISIBLE_DEVICES to it, so the process sees
    # it as device 0)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    slot = int(visible) if visible.isdigit() else (torch.cuda.current_device() if torch.cuda.is_available() else 0)
    start = (slot * cores) % len(allowed)
    chosen = [allowed[(start + i) % len(allowed)] for i in range(cores)]
    os.sched_setaffinity(0, chosen)
    torch.set_num_threads(cores)
    return {"pinned_cores": chosen, "allowed_cores": len(allowed), "torch_threads": torch.get_num_threads()}


@contextmanager
def no_gc_pauses():
    """The collector off while the block runs; it runs once before, outside the clock."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def another_call_due(done: int, timed_s: float, repeats: int, min_timed_s: float, max_repeats: int) -> bool:
    """Whether another timed call is due: at least `repeats`, then more while the timed calls have
    taken less than `min_timed_s` in all, never more than `max_repeats`."""
    if done < repeats:
        return True
    return timed_s < min_timed_s and done < max(max_repeats, repeats)
