"""Inference benchmark: prefill and generate latency/throughput over a grid, with peak memory.

Definitions (all per cell, medians over `repeats` after `warmup` runs):
- prefill: one forward pass over a batch of prompts (logits of the last position only, as generate
  computes them). prefill_ms_per_token = latency / prompt_len; prefill_tokens_per_s = batch*prompt_len / latency.
- generate: greedy generation of exactly `new_tokens` tokens after a prompt of `prompt_len`.
  decode_ms_per_token = latency / new_tokens; decode_tokens_per_s = batch*new_tokens / latency.
  The roofline column reads the weights (and the KV cache) once per decode step against the measured
  copy bandwidth: decode_roofline_pct = bytes_per_step / (latency/new_tokens) / bandwidth.
A cell that runs out of memory is recorded with outcome "oom" and the grid goes on.
"""
from __future__ import annotations

import itertools
import logging

import torch
from tqdm import tqdm

from quantbench import memory, timing

log = logging.getLogger(__name__)


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def random_prompts(vocab_size: int, batch: int, length: int, device: str, seed: int, avoid: set[int]):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (batch, length), generator=g)
    for special in avoid:  # keep EOS/pad out of the prompt so every row generates the same length
        ids[ids == special] = (special + 1) % vocab_size
    return ids.to(device), torch.ones_like(ids, device=device)


def kv_cache_mb(config, batch: int, seq_len: int, bytes_per_value: int) -> float:
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * heads * head_dim * batch * seq_len * bytes_per_value / 2**20


def _cell(fn, device: str, warmup: int, repeats: int) -> dict:
    memory.reset(device)
    try:
        with memory.PeakMemory(device) as peak:
            samples = timing.repeat(fn, device, warmup, repeats)
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if not _is_oom(exc):
            raise
        memory.reset(device)
        return {"outcome": "oom", "error": str(exc).splitlines()[0][:300]}
    finally:
        memory.reset(device)
    return {"outcome": "ok", **timing.summarize(samples), **peak.result}


def run_prefill(model, vocab_size, device, spec, warmup, repeats, seed, avoid) -> list[dict]:
    rows = []
    for bs in tqdm(spec["batch_sizes"], desc="prefill", mininterval=2):
        ids, mask = random_prompts(vocab_size, bs, spec["prompt_len"], device, seed, avoid)

        def fn():
            with torch.inference_mode():
                model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=1)

        cell = _cell(fn, device, warmup, repeats)
        row = {"scenario": "prefill", "batch_size": bs, "prompt_len": spec["prompt_len"], **cell}
        if cell["outcome"] == "ok":
            lat = cell["median_s"]
            row.update(prefill_latency_ms=lat * 1e3, prefill_ms_per_token=lat * 1e3 / spec["prompt_len"],
                       prefill_tokens_per_s=bs * spec["prompt_len"] / lat)
        rows.append(row)
    return rows


def run_generate(model, vocab_size, device, spec, warmup, repeats, seed, avoid, pad_token_id,
                 weights_mb: float, bandwidth_gb_per_s: float | None, kv_bytes: int,
                 mode: str = "eager") -> list[dict]:
    rows = []
    grid = list(itertools.product(spec["batch_sizes"], spec["new_tokens"], spec["use_cache"]))
    for bs, new_tokens, use_cache in tqdm(grid, desc=f"generate ({mode})", mininterval=2):
        ids, mask = random_prompts(vocab_size, bs, spec["prompt_len"], device, seed, avoid)
        kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                      use_cache=use_cache, pad_token_id=pad_token_id)
        if mode == "static":
            kwargs["cache_implementation"] = "static"

        def fn():
            with torch.inference_mode():
                out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
            assert out.shape[1] == spec["prompt_len"] + new_tokens, "generation stopped early"

        cell = _cell(fn, device, warmup, repeats)
        row = {"scenario": "generate", "mode": mode, "batch_size": bs, "prompt_len": spec["prompt_len"],
               "new_tokens": new_tokens, "use_cache": use_cache, **cell}
        if cell["outcome"] == "ok":
            lat = cell["median_s"]
            step_s = lat / new_tokens
            row.update(generate_latency_ms=lat * 1e3, decode_ms_per_token=step_s * 1e3,
                       decode_tokens_per_s=bs * new_tokens / lat)
            if bandwidth_gb_per_s and use_cache:
                # mean KV cache length over the decode steps
                kv = kv_cache_mb(model.config, bs, spec["prompt_len"] + new_tokens // 2, kv_bytes)
                row["decode_bytes_per_step_mb"] = weights_mb + kv
                row["decode_roofline_pct"] = 100 * (weights_mb + kv) * 2**20 / step_s / (bandwidth_gb_per_s * 1e9)
        rows.append(row)
    return rows
