"""What a KV cache costs: decode step time at a long context, peak memory, bytes per token, and the
longest context a memory budget holds (derived from the measured bytes per token and the weights)."""
from __future__ import annotations

import statistics
import time

import torch

from quantbench import memory
from quantbench.kv_cache import cache_bytes, make_cache


def step_stats(times_s: list[float]) -> dict:
    """Median, mean (amortized: a quantized cache's periodic re-quantization falls on some steps
    only) and IQR/median of per-step times, in ms."""
    ms = sorted(t * 1e3 for t in times_s)
    q1, q3 = ms[len(ms) // 4], ms[(3 * len(ms)) // 4]
    med = statistics.median(ms)
    return {"decode_step_ms_median": med, "decode_step_ms_mean": statistics.fmean(ms),
            "decode_step_ms_iqr_over_median": (q3 - q1) / med if med else float("nan"),
            "decode_step_ms_max": ms[-1], "decode_steps": len(ms)}


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@torch.inference_mode()
def torch_decode(model, spec, prompt: torch.Tensor, batch: int, steps: int, chunk: int) -> dict:
    """Fill a fresh cache with `prompt` ([tokens]) repeated `batch` times, in chunks, then time
    `steps` greedy one-token steps; the peak memory covers the fill and the steps. An out-of-memory
    is recorded as the outcome."""
    device = next(model.parameters()).device
    ids = prompt[None].repeat(batch, 1).to(device)
    with memory.PeakMemory(device.type) as peak:
        try:
            cache = make_cache(spec, model.config)
            for start in range(0, ids.shape[1], chunk):
                out = model(input_ids=ids[:, start:start + chunk], past_key_values=cache, use_cache=True)
            nxt = out.logits[:, -1:].argmax(-1)
            times = []
            for _ in range(steps):
                _sync(device)
                t0 = time.perf_counter()
                out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
                nxt = out.logits[:, -1:].argmax(-1)
                _sync(device)
                times.append(time.perf_counter() - t0)
            held = cache_bytes(cache)
            tokens = cache.get_seq_length()
        except torch.OutOfMemoryError as err:
            return {"batch_size": batch, "status": "oom", "error": str(err).splitlines()[0]}
    del cache
    return {"batch_size": batch, "status": "ok", "context": int(prompt.numel()), **step_stats(times),
            **peak.result, "cache_bytes_after_steps": held["total_bytes"], "tokens_in_cache": tokens}


def fits(weights_bytes: float, bytes_per_token: float, budgets_gb: list[float], batch: int = 1) -> dict:
    """{budget GB: longest context (tokens) at `batch` whose cache and weights fit the budget}:
    derived, not measured; activations and the runtime's own buffers are not counted."""
    return {str(gb): max(0, int((gb * 2**30 - weights_bytes) // (bytes_per_token * batch))) for gb in budgets_gb}
