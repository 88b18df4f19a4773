"""The cells every external engine is measured on, the same for each (issue: engine axis):

  decode_ms_per_token   at each batch size after a short prompt: (time to generate 1 + N tokens minus time
                        to generate 1) / N, per repeat, so the prompt's prefill and the first token cancel;
                        where that median is not above zero (N too small for the engine's per-call noise)
                        the cell is `unresolved`, and call_ms_per_token (the long call over its 1 + N
                        tokens, prefill included) is all it gives
  prefill_ms            one row of `prefill_tokens`, generating one token (the first step is included)
  throughput            `requests` rows of `prompt_tokens` submitted at once, `new_tokens` each: output
                        tokens per second of wall time, as an offline batch job sees it

An engine is any object with `generate(rows, new_tokens) -> list[int]` (token ids in, the number of tokens
generated per row out; blocking until done) and `info() -> dict`. Every call gets fresh random prompts
(an engine that caches prefixes would otherwise time a cache hit), and a row that stops early is an error:
the cell would time fewer tokens than it names. Wall-clock time (time.perf_counter): the engines
synchronise their own devices before returning.
"""
from __future__ import annotations

import time

import numpy as np

from quantbench.timing import summarize

DEFAULTS = {"prompt_tokens": 30, "new_tokens": 64, "batch_sizes": [1, 4, 16], "prefill_tokens": 512,
            "throughput": {"requests": 64, "prompt_tokens": 512, "new_tokens": 128},
            "warmup": 1, "repeats": 5, "builtin_mode": "eager"}


class Prompts:
    """Fresh random prompts, reproducible from the seed: ids drawn from [first, vocab) less the special ids."""

    def __init__(self, vocab_size: int, seed: int, avoid: set[int], first: int = 100):
        self.rng = np.random.default_rng(seed)
        self.pool = np.setdiff1d(np.arange(min(first, vocab_size // 2), vocab_size), sorted(avoid))

    def rows(self, batch: int, length: int) -> list[list[int]]:
        return self.pool[self.rng.integers(0, len(self.pool), (batch, length))].tolist()


def _timed(engine, rows: list[list[int]], new_tokens: int) -> float:
    t0 = time.perf_counter()
    counts = engine.generate(rows, new_tokens)
    elapsed = time.perf_counter() - t0
    if list(counts) != [new_tokens] * len(rows):
        raise RuntimeError(f"asked {len(rows)} rows for {new_tokens} tokens each and got {list(counts)}: "
                           "the engine stopped early (end-of-sequence not ignored), so the cell is not timed")
    return elapsed


def _repeated(fn, warmup: int, repeats: int) -> list:
    """`repeats` results of fn after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    return [fn() for _ in range(repeats)]


def decode_cell(engine, prompts: Prompts, batch: int, prompt_tokens: int, new_tokens: int, warmup: int,
                repeats: int) -> dict:
    def once() -> tuple[float, float]:
        short = _timed(engine, prompts.rows(batch, prompt_tokens), 1)
        long = _timed(engine, prompts.rows(batch, prompt_tokens), 1 + new_tokens)
        return (long - short) / new_tokens, long / (1 + new_tokens)

    samples = _repeated(once, warmup, repeats)
    s = summarize([d for d, _ in samples])
    call = summarize([c for _, c in samples])
    cell = {"batch": batch, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens,
            "call_ms_per_token": call["median_s"] * 1e3, "timing": s, "call_timing": call}
    if s["median_s"] <= 0:
        return {**cell, "outcome": "unresolved", "ms_per_token": None, "tokens_per_s": None,
                "reason": f"generating 1 + {new_tokens} tokens took no longer than generating 1 (median of "
                          f"{repeats}): the steps are below this engine's per-call noise; raise new_tokens"}
    return {**cell, "outcome": "ok", "ms_per_token": s["median_s"] * 1e3, "tokens_per_s": batch / s["median_s"]}


def prefill_cell(engine, prompts: Prompts, tokens: int, warmup: int, repeats: int) -> dict:
    s = summarize(_repeated(lambda: _timed(engine, prompts.rows(1, tokens), 1), warmup, repeats))
    return {"batch": 1, "prompt_tokens": tokens, "ms": s["median_s"] * 1e3, "timing": s}


def throughput_cell(engine, prompts: Prompts, requests: int, prompt_tokens: int, new_tokens: int,
                    warmup: int, repeats: int) -> dict:
    s = summarize(_repeated(lambda: _timed(engine, prompts.rows(requests, prompt_tokens), new_tokens), warmup,
                            repeats))
    return {"requests": requests, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens,
            "output_tokens_per_s": requests * new_tokens / s["median_s"], "timing": s}


def filled(spec: dict | None) -> dict:
    """config `benchmark.engine_cells` with DEFAULTS where it is silent."""
    spec = spec or {}
    return {**DEFAULTS, **spec, "throughput": {**DEFAULTS["throughput"], **spec.get("throughput", {})}}


def extent(spec: dict) -> tuple[int, int]:
    """The longest row (tokens, prompt and generated) and the most rows at once that a filled spec sends."""
    tp = spec["throughput"]
    longest = max(spec["prompt_tokens"] + 1 + spec["new_tokens"], spec["prefill_tokens"] + 1,
                  tp["prompt_tokens"] + tp["new_tokens"])
    return longest, max(max(spec["batch_sizes"]), tp["requests"])


def run(engine, spec: dict, vocab_size: int, seed: int, avoid: set[int], progress=None) -> dict:
    """Every cell of `spec` (DEFAULTS filled in) through `engine`."""
    spec = filled(spec)
    prompts = Prompts(vocab_size, seed, avoid)
    warmup, repeats = spec["warmup"], spec["repeats"]
    out = {"decode": [], "spec": spec}
    for b in spec["batch_sizes"]:
        out["decode"].append(decode_cell(engine, prompts, b, spec["prompt_tokens"], spec["new_tokens"], warmup,
                                         repeats))
        if progress:
            c = out["decode"][-1]
            progress(f"decode batch {b}: " + (f"{c['ms_per_token']:.3f} ms/token" if c["outcome"] == "ok"
                                              else f"unresolved ({c['call_ms_per_token']:.3f} ms/token per call)"))
    out["prefill"] = prefill_cell(engine, prompts, spec["prefill_tokens"], warmup, repeats)
    t = spec["throughput"]
    out["throughput"] = throughput_cell(engine, prompts, t["requests"], t["prompt_tokens"], t["new_tokens"],
                                        warmup, repeats)
    if progress:
        progress(f"prefill {spec['prefill_tokens']}: {out['prefill']['ms']:.2f} ms; throughput "
                 f"{out['throughput']['output_tokens_per_s']:.1f} output tokens/s")
    return out
