"""What a benchmark job checks and profiles beside its timings (on CUDA): whether a fast decoder
picks the tokens eager generate picks, and where a generate call spends its time."""
from __future__ import annotations

import time

import torch

from quantbench import timing
from quantbench.benchmark import (
    DECODER_MODES,
    generate_call,
    max_new_tokens,
    random_prompts,
)
from quantbench.decoders import DECODERS, StaticDecoder


def eager_reference(model, vocab_size, device, prompt_len, new_tokens, batch, seed, avoid, pad_token_id):
    """Prompts and the greedy tokens eager generate picks for them: what every fast decoder of
    this batch size is checked against (computed once, shared by the modes)."""
    ids, mask = random_prompts(vocab_size, batch, prompt_len, device, seed + 1, avoid)
    with torch.inference_mode():
        ref = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=pad_token_id)
    return ids, ref[:, prompt_len:]


def fast_matches_eager(model, mode, vocab_size, device, prompt_len, new_tokens, seed, avoid, pad_token_id,
                       decoder: StaticDecoder | None = None, batch: int = 1, reference=None) -> dict:
    """Does a static-cache decoder pick the same greedy tokens as eager generate? Random weights
    give near-tied logits, so a late divergence is fp16 rounding, an early one a bug. Pass the
    decoder the timed cells used, so the check covers the very graphs that were timed, and the
    eager_reference of this batch size if one was already computed."""
    ids, ref = reference or eager_reference(model, vocab_size, device, prompt_len, new_tokens, batch, seed,
                                            avoid, pad_token_id)
    decoder = decoder or DECODERS[mode](model, prompt_len + new_tokens)
    got, _ = decoder.generate(ids, new_tokens)
    # per sequence: the first step where it differs (None: identical)
    firsts = []
    for row in (ref == got).tolist():
        firsts.append(row.index(False) if False in row else None)
    diverged = [f for f in firsts if f is not None]
    return {"mode": mode, "batch_size": ids.shape[0], "new_tokens": new_tokens, "identical": not diverged,
            "first_difference_at": min(diverged) if diverged else None,
            "sequences_identical": firsts.count(None)}


def profile_generate(model, mode, vocab_size, device, spec, seed, avoid, pad_token_id, new_tokens: int,
                     decoder: StaticDecoder | None = None, top: int = 12) -> dict:
    """Where a batch-1 generate call spends its time: CUDA kernel time against wall time, and the
    kernels that ran (the names show which matmul kernel the backend really used)."""
    from torch.profiler import ProfilerActivity, profile

    ids, mask = random_prompts(vocab_size, 1, spec["prompt_len"], device, seed, avoid)
    if mode in DECODER_MODES:
        decoder = decoder or DECODERS[mode](model, spec["prompt_len"] + max_new_tokens(spec))
    fn = generate_call(model, mode, ids, mask, new_tokens, True, pad_token_id, spec["prompt_len"], decoder)
    fn()  # warm: compilation and graph capture stay out of the profile
    timing._sync(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        fn()
        timing._sync(device)
        wall = time.perf_counter() - t0
    kernels = []
    for evt in prof.key_averages():
        dev_us = getattr(evt, "self_device_time_total", None)
        if dev_us is None:
            dev_us = getattr(evt, "self_cuda_time_total", 0)
        if dev_us and str(getattr(evt, "device_type", "")).endswith("CUDA"):
            kernels.append({"kernel": evt.key[:160], "calls": evt.count, "device_ms": dev_us / 1e3})
    kernels.sort(key=lambda k: -k["device_ms"])
    busy_ms = sum(k["device_ms"] for k in kernels)
    launches = sum(k["calls"] for k in kernels)
    return {"mode": mode, "batch_size": 1, "new_tokens": new_tokens, "wall_ms": wall * 1e3,
            "kernel_ms": busy_ms, "gpu_busy_pct": 100 * busy_ms / (wall * 1e3) if wall else None,
            "kernel_launches": launches, "launches_per_token": launches / new_tokens,
            "top_kernels": [{**k, "share_pct": 100 * k["device_ms"] / busy_ms if busy_ms else None}
                            for k in kernels[:top]]}
