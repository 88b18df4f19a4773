"""Inference benchmark: prefill and generate latency/throughput over a grid, with peak memory.

Definitions (all per cell, medians over `repeats` timed runs after `warmup` untimed runs):
- prefill: one forward pass over a batch of prompts (logits of the last position only, as generate
  computes them). prefill_latency_ms is that pass (the comparison's "per-token latency" is this
  number: its throughput column is batch / latency); prefill_ms_per_token = latency / prompt_len;
  prefill_tokens_per_s = batch*prompt_len / latency.
- generate: greedy generation of exactly `new_tokens` tokens after a prompt of `prompt_len`.
  decode_ms_per_token = latency / new_tokens; decode_tokens_per_s = batch*new_tokens / latency
  (the comparison's definitions: the prefill is inside the latency).
  decode_step_ms excludes the prefill: the time between the first and the last decode step over
  the new_tokens - 1 forward passes between them, taken from CUDA events recorded at each step.
- modes: eager (generate with its default dynamic KV cache), static (generate with a static KV
  cache, compilation off: what the cache alone changes), compiled (a greedy loop over a static
  cache whose decode step is torch.compile'd with mode="reduce-overhead", i.e. replayed as a CUDA
  graph; torch.compiler.cudagraph_mark_step_begin() between steps), graphs (the eager step captured
  whole into one CUDA graph per batch size by us) and fused (inductor's fused step, compiled without
  CUDA graphs of its own, captured into one CUDA graph per batch size by us: fusion and a single
  replay with no cudagraph-tree rules in between). Static-cache cells need the KV cache and run at
  `fast_batch_sizes`.
- roofline: a decode step must read every weight once (not the input embedding table: a step
  gathers one row of it) and the KV cache once, so
  decode_roofline_pct = bytes_per_step / decode_step_s / copy_bandwidth, with the KV cache at its
  mean length over the steps. It is a floor on bytes (kernels that re-read count once).
A cell that runs out of memory is recorded with outcome "oom", one that fails otherwise with
outcome "error" (and the message); the grid goes on.
"""
from __future__ import annotations

import logging
import time
import traceback

import torch
from tqdm import tqdm

from quantbench import energy, memory, steady_host, timing
from quantbench.benchmark_grid import cell_batch_sizes, generate_grid, max_new_tokens  # noqa: F401
from quantbench.decoders import DECODERS, StepClock
from quantbench.loaded_model import LoadedModel, WeightsMB
from quantbench.unsupported import Unsupported

log = logging.getLogger(__name__)
MODES = ("eager", "static", "compiled", "graphs", "fused")
DECODER_MODES = ("compiled", "graphs", "fused")  # our own loop over a static cache


def _is_oom(exc: BaseException) -> bool:
    # CUDA says "out of memory"; the CPU allocator says "can't allocate memory"
    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


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


def weights_mb(loaded: LoadedModel) -> WeightsMB:
    """The loaded model's weights as records keep them: counted from its file's tensors where a file
    holds them (llama.cpp), else from its torch tensors (quantbench.memory), the same way."""
    if loaded.file_weights is not None:
        return loaded.file_weights
    split = memory.weights_split_mb(loaded.model)
    return WeightsMB(memory.model_weights_mb(loaded.model), split["body_mb"], split["embedding_head_mb"],
                     decode_weights_mb(loaded.model))


def decode_weights_mb(model) -> float:
    """Bytes a decode step must read of the model: every weight tensor as quantbench.memory counts
    it (parameters, buffers, a quantized tensor subclass by its inner tensors, HQQ's scales and zero
    points, bitsandbytes' quantization constants), minus the input embedding table (a step gathers
    one row of it; a tied output head reads it whole, so a tied table stays counted)."""
    emb = model.get_input_embeddings().weight if hasattr(model, "get_input_embeddings") else None
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    # a quantized head (GPTQ's lm_head option) holds no weight tensor of its own: it is not tied
    head = getattr(out, "weight", None)
    tied = emb is not None and isinstance(head, torch.Tensor) and head.data_ptr() == emb.data_ptr()
    skip = {t.data_ptr() for t in memory.storage_tensors(emb)} if emb is not None and not tied else set()
    return memory.storage_mb(memory.weight_tensors(model), skip)


def _timed_runs(fn, device: str, warmup: int, repeats: int, warm_fn=None, meter=None, min_timed_s: float = 0.0,
                max_repeats: int = 0):
    """Latencies of at least `repeats` calls of fn (more while they have taken less than
    `min_timed_s`, up to `max_repeats`: quantbench.steady_host) after `warmup` calls of warm_fn
    (default fn); fn returns its per-step decode seconds or None. Also returns the first call's
    seconds (compilation and lazy initialisation show there) and the energy the timed calls drew
    (joules or None) with their wall seconds."""
    t0 = time.perf_counter()
    for i in range(warmup):
        (warm_fn or fn)()
        if i == 0:
            timing._sync(device)
            first = time.perf_counter() - t0
    if warmup == 0:
        first = float("nan")
    timing._sync(device)
    lat, steps = [], []
    # the collector runs once, here, before the energy window opens, and not between the timed calls
    with steady_host.no_gc_pauses():
        joules_before = meter.read_j() if meter else None
        t_timed = time.perf_counter()
        while steady_host.another_call_due(len(lat), sum(lat), repeats, min_timed_s, max_repeats):
            box = {}
            lat.append(timing.time_call(lambda: box.setdefault("step", fn()), device))
            if box.get("step") is not None:
                steps.append(box["step"])
        elapsed = time.perf_counter() - t_timed
        joules = meter.read_j() - joules_before if joules_before is not None else None
    return lat, steps, first, joules, elapsed


_METERS: dict[str, energy.EnergyMeter] = {}


def _meter(device: str) -> energy.EnergyMeter:
    if device not in _METERS:
        _METERS[device] = energy.EnergyMeter(device)
    return _METERS[device]


def _cell(fn, device: str, warmup: int, repeats: int, warm_fn=None, retries: int = 0,
          spread_limit: float = 0.05, min_timed_s: float = 0.0, max_repeats: int = 0) -> dict:
    """One timed cell. A cell whose spread (IQR/median of the decode steps, else of the calls)
    exceeds `spread_limit` is measured again, up to `retries` more times; the last attempt is kept
    and, if still above, marked `spread_above_limit`."""
    meter = _meter(device)
    for attempt in range(1 + retries):
        # PeakMemory resets (gc, CUDA cache, peak statistics) on entry: once per attempt is enough.
        try:
            with memory.PeakMemory(device) as peak:
                samples, steps, first, joules, elapsed = _timed_runs(fn, device, warmup, repeats, warm_fn, meter,
                                                                            min_timed_s, max_repeats)
        except Exception as exc:  # noqa: BLE001 - one failing cell must not end the grid
            memory.reset(device)
            if isinstance(exc, Unsupported):  # the runtime or kernel cannot run this cell as asked
                return {"outcome": "unsupported", "error": str(exc)}
            if _is_oom(exc):
                return {"outcome": "oom", "error": str(exc).splitlines()[0][:300]}
            log.error("cell failed:\n%s", traceback.format_exc())
            first = str(exc).splitlines()[0][:300] if str(exc) else ""
            return {"outcome": "error", "error": f"{type(exc).__name__}: {first}"}
        spread = timing.summarize(steps or samples)["iqr_over_median"]
        if spread <= spread_limit:
            break
        if attempt < retries:
            log.info("spread %.1f%% above %.1f%%: measuring the cell again", 100 * spread, 100 * spread_limit)
    cell = {"outcome": "ok", **timing.summarize(samples), **peak.result, "first_call_s": first,
            "attempts": attempt + 1, "spread_above_limit": spread > spread_limit,
            **meter.cell_fields(joules, elapsed, len(samples))}
    if steps:
        s = timing.summarize(steps)
        cell.update(decode_step_ms=s["median_s"] * 1e3, decode_step_iqr_over_median=s["iqr_over_median"])
    return cell


def run_prefill(model, vocab_size, device, spec, warmup, repeats, seed, avoid, retries: int = 0,
                spread_limit: float = 0.05, min_timed_s: float = 0.0, max_repeats: int = 0,
                batch_limit: int | None = None, batch_reason: str | None = None) -> list[dict]:
    """Prefill cells; a batch above `batch_limit` (LoadedModel's) is recorded as unsupported, with
    `batch_reason`."""
    rows = []
    for bs in tqdm(spec["batch_sizes"], desc="prefill", mininterval=2):
        ids, mask = random_prompts(vocab_size, bs, spec["prompt_len"], device, seed, avoid)

        def fn():
            with torch.inference_mode():
                model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=1)

        cell = (_cell(fn, device, warmup, repeats, retries=retries, spread_limit=spread_limit,
                      min_timed_s=min_timed_s, max_repeats=max_repeats)
                if batch_limit is None or bs <= batch_limit
                else {"outcome": "unsupported", "error": batch_reason})
        row = {"scenario": "prefill", "batch_size": bs, "prompt_len": spec["prompt_len"], **cell}
        if cell["outcome"] == "ok":
            lat = cell["median_s"]
            row.update(prefill_latency_ms=lat * 1e3, prefill_ms_per_token=lat * 1e3 / spec["prompt_len"],
                       prefill_tokens_per_s=bs * spec["prompt_len"] / lat)
            if "energy_j_per_call" in cell:
                row["energy_j_per_prompt_token"] = cell["energy_j_per_call"] / (bs * spec["prompt_len"])
        rows.append(row)
    return rows


def generate_call(model, mode, ids, mask, new_tokens, use_cache, pad_token_id, prompt_len, decoder):
    if mode in DECODER_MODES:
        def fn():
            tokens, step_s = decoder.generate(ids, new_tokens)
            assert tokens.shape[1] == new_tokens
            return step_s
        return fn

    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                  use_cache=use_cache, pad_token_id=pad_token_id)
    if mode == "static":
        # static cache alone: transformers would otherwise compile the forward on its own
        kwargs.update(cache_implementation="static", disable_compile=True)

    def fn():
        from transformers import LogitsProcessorList

        clock = StepClock() if ids.is_cuda else None
        extra = {"logits_processor": LogitsProcessorList([clock])} if clock else {}
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, **kwargs, **extra)
        assert out.shape[1] == prompt_len + new_tokens, "generation stopped early"
        return clock.decode_s() if clock else None
    return fn


def run_generate(model, vocab_size, device, spec, warmup, repeats, seed, avoid, pad_token_id,
                 weights_mb: float, bandwidth_gb_per_s: float | None, kv_bytes: int,
                 mode: str = "eager", decoders: dict | None = None, retries: int = 0,
                 spread_limit: float = 0.05, min_timed_s: float = 0.0, max_repeats: int = 0) -> list[dict]:
    """One mode's generate grid. `weights_mb` is what a decode step reads of the model
    (decode_weights_mb). A dict passed as `decoders` receives the static-cache decoder the cells
    were timed with (its compiled step or captured graphs), for profiles and checks to reuse."""
    if mode not in MODES:
        raise ValueError(f"unknown generate mode {mode!r}; allowed: {', '.join(MODES)}")
    rows = []
    decoder = None
    if mode in DECODER_MODES:
        if device != "cuda":  # validation noted it (or refused it under unsupported_methods: error)
            return [{"scenario": "generate", "mode": mode, "batch_size": bs, "prompt_len": spec["prompt_len"],
                     "new_tokens": n, "use_cache": use_cache, "outcome": "unsupported",
                     "error": f"{mode} mode replays CUDA graphs; device is {device}"}
                    for bs, n, use_cache in generate_grid(spec, mode)]
        decoder = DECODERS[mode](model, spec["prompt_len"] + max_new_tokens(spec))
    warm_tokens = spec.get("warmup_new_tokens")
    for bs, new_tokens, use_cache in tqdm(generate_grid(spec, mode), desc=f"generate ({mode})", mininterval=2):
        ids, mask = random_prompts(vocab_size, bs, spec["prompt_len"], device, seed, avoid)
        args = (model, mode, ids, mask)
        rest = (use_cache, pad_token_id, spec["prompt_len"], decoder)
        fn = generate_call(*args, new_tokens, *rest)
        # A shorter warm-up launches every kernel a long call does (the decode step is the same).
        warm = generate_call(*args, min(new_tokens, warm_tokens), *rest) if warm_tokens else fn
        # compiled: the first call compiles, the next records the CUDA graphs; graphs: the first
        # call captures. None of them is timed.
        cell = _cell(fn, device, max(warmup, 2) if mode in DECODER_MODES else warmup, repeats, warm_fn=warm,
                     retries=retries, spread_limit=spread_limit, min_timed_s=min_timed_s, max_repeats=max_repeats)
        row = {"scenario": "generate", "mode": mode, "batch_size": bs, "prompt_len": spec["prompt_len"],
               "new_tokens": new_tokens, "use_cache": use_cache, **(decoder.info if decoder else {}), **cell}
        if cell["outcome"] == "ok":
            lat = cell["median_s"]
            row.update(generate_latency_ms=lat * 1e3, decode_ms_per_token=lat * 1e3 / new_tokens,
                       decode_tokens_per_s=bs * new_tokens / lat)
            if "energy_j_per_call" in cell:
                # the whole call (prefill of the prompt included) over the tokens it generated
                row["energy_j_per_token"] = cell["energy_j_per_call"] / (bs * new_tokens)
            if bandwidth_gb_per_s and use_cache:
                # the KV cache at its mean length over the decode steps
                kv = kv_cache_mb(model.config, bs, spec["prompt_len"] + new_tokens // 2, kv_bytes)
                step_s = cell.get("decode_step_ms", lat * 1e3 / new_tokens) / 1e3
                row["decode_bytes_per_step_mb"] = weights_mb + kv
                row["decode_roofline_pct"] = 100 * (weights_mb + kv) * 2**20 / step_s / (bandwidth_gb_per_s * 1e9)
        rows.append(row)
    if decoder is not None and decoders is not None:
        decoders[mode] = decoder
    return rows
