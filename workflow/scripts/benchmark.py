"""Benchmark one variant: load time, prefill and generate grids, peak memory, decode roofline,
and (on CUDA) a profile of one batch-1 generate call per mode."""
import logging
import os
import time

import torch

from quantbench import benchmark, cli, decode_checks, memory, steady_host, timing
from quantbench.backends import get as get_backend
from quantbench.loading import load
from quantbench.modelio import RunContext, read_meta
from quantbench.records import Recorder
from quantbench.unsupported import Unsupported

p = cli.parser(__doc__)
p.add_argument("--model", required=True)
p.add_argument("--adapter")
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
spec = params["benchmark"]
ctx = RunContext(device=params["device"], dtype_name=params["dtype"], seed=params["seed"])


def random_weights(folder: str) -> bool:
    """Whether the model descends from a random-initialised base: follow the `source` each model
    folder's quantbench.json names (quantize writes its input folder there) back to the base."""
    for _ in range(8):
        try:
            meta = read_meta(folder)
        except FileNotFoundError:
            return False
        if meta.get("source") == "random":
            return True
        folder = meta.get("source")
        if not folder or not os.path.isdir(folder):
            return False
    return False


def prebuild_kernel(folder: str) -> dict:
    """Build a GPTQModel JIT kernel before the clock starts, so the first load does not time its
    compilation (minutes for Marlin). The build is cached under GPTQMODEL_TORCH_EXTENSIONS_DIR
    (default ~/.cache/gptqmodel) and reused by every later job."""
    meta = read_meta(folder)
    ext = get_backend(meta["backend"]).jit_extension(meta["params"], ctx.dtype_name)
    if ext is None or ctx.device != "cuda":
        return {}
    from gptqmodel import extension

    t0 = time.perf_counter()
    ok = extension.load(ext).get(ext, False)
    return {"kernel_prebuild": ext, "kernel_prebuild_s": time.perf_counter() - t0, "kernel_prebuild_ok": ok,
            "kernel_cache_dir": os.environ.get("GPTQMODEL_TORCH_EXTENSIONS_DIR", "~/.cache/gptqmodel")}


# Job params carry random_weights so report rows from random weights are marked as such.
params["random_weights"] = random_weights(args.model)
rec = Recorder("benchmark", params["variant"], params, ctx.device, ctx.seed)
prebuilt = prebuild_kernel(args.model)

host = {**steady_host.pin(ctx.device, spec.get("pin_cores", 0)), "gc_off_while_timed": True,
        "min_timed_s": spec.get("min_timed_s", 0.0), "max_repeats": spec.get("max_repeats", 0)}
memory.reset(ctx.device)
with memory.PeakMemory(ctx.device) as load_peak:
    t0 = time.perf_counter()
    loaded, tokenizer, info = load(args.model, ctx, adapter=args.adapter)
    model = loaded.model
    timing._sync(ctx.device)
    load_s = time.perf_counter() - t0
memory.freeze_long_lived_objects()
weights = benchmark.weights_mb(loaded)
weights_mb, step_weights_mb = weights.weights_mb, weights.decode_mb
split_mb = {"body_mb": weights.body_mb, "embedding_head_mb": weights.embedding_head_mb}
bandwidth = timing.measure_copy_bandwidth_gb_per_s(ctx.device) if spec.get("roofline", True) else None
logging.info("loaded in %.2f s, weights %.1f MB (%.1f MB read per decode step), kernel %s, copy bandwidth %s GB/s",
             load_s, weights_mb, step_weights_mb, info["kernel"], bandwidth and f"{bandwidth:.0f}")

vocab = model.config.vocab_size
avoid = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id) if t is not None}
common = dict(model=model, vocab_size=vocab, device=ctx.device, warmup=spec["warmup"],
              repeats=spec["repeats"], seed=ctx.seed, avoid=avoid,
              retries=spec.get("spread_retries", 0), spread_limit=spec.get("spread_limit", 0.05),
              min_timed_s=host["min_timed_s"], max_repeats=host["max_repeats"])
rows = (benchmark.run_prefill(spec=spec["prefill"], batch_limit=loaded.batch_limit, batch_reason=loaded.batch_reason,
                              **common) if spec.get("prefill") else [])
kv_bytes = 2 if ctx.dtype_name in ("float16", "bfloat16") else 4
gen = spec["generate"]
if args.adapter and gen.get("adapters"):
    # an unmerged adapter's speed is a side question: its own (usually smaller) grid
    gen = {**gen, **gen["adapters"]}
modes = gen.get("modes", ["eager"])
decoders = {}  # the static-cache decoders the cells were timed with: profiles and checks reuse them
for mode in modes:
    rows += benchmark.run_generate(spec=gen, pad_token_id=tokenizer.pad_token_id,
                                   weights_mb=step_weights_mb, bandwidth_gb_per_s=bandwidth,
                                   kv_bytes=kv_bytes, mode=mode, decoders=decoders, **common)

profiles, checks = [], []
n = min(gen["new_tokens"])
if ctx.device == "cuda" and spec.get("profile", True):
    for mode in modes:
        try:
            profiles.append(decode_checks.profile_generate(model, mode, vocab, ctx.device, gen, ctx.seed, avoid,
                                                       tokenizer.pad_token_id, new_tokens=n,
                                                       decoder=decoders.get(mode)))
        except Exception as exc:  # noqa: BLE001 - a profile is extra; its failure is recorded
            if not isinstance(exc, Unsupported):  # a refusal says why in one line; a failure keeps its trace
                logging.exception("profile of mode %s failed", mode)
            profiles.append({"mode": mode, "error": f"{type(exc).__name__}: {exc}"[:300]})
# Last: a failing check can leave the CUDA context unusable (a device-side assert).
# Every fast cell's batch size is checked; `check_new_tokens` (default: the shortest generation)
# bounds the cost: the step replayed is the same at any length of one static cache.
check_n = min(n, gen.get("check_new_tokens") or n)
references = {}
for mode, decoder in decoders.items():
    for bs in benchmark.cell_batch_sizes(gen, mode, max(gen.get("fast_new_tokens") or gen["new_tokens"])):
        try:
            if bs not in references:
                references[bs] = decode_checks.eager_reference(model, vocab, ctx.device, gen["prompt_len"], check_n, bs,
                                                           ctx.seed, avoid, tokenizer.pad_token_id)
            checks.append(decode_checks.fast_matches_eager(model, mode, vocab, ctx.device, gen["prompt_len"], check_n,
                                                       ctx.seed, avoid, tokenizer.pad_token_id, decoder=decoder,
                                                       batch=bs, reference=references[bs]))
        except Exception as exc:  # noqa: BLE001 - recorded: a mode that cannot run here says why
            checks.append({"mode": mode, "batch_size": bs, "new_tokens": check_n,
                           "error": f"{type(exc).__name__}: {exc}"[:300]})

rec.record["kernel"] = info["kernel"]
rec.record["load"] = {**info, **prebuilt}
rec.record["metrics"] = {"load_s": load_s, "weights_memory_mb": weights_mb, **split_mb,
                         "decode_weights_read_mb": step_weights_mb,
                         "load_peak_memory_mb": load_peak.result["peak_memory_mb"],
                         "copy_bandwidth_gb_per_s": bandwidth}
rec.record["host"] = host  # what the benchmark did to steady its own timings (quantbench.steady_host)
unmeasured = memory.unmeasured_on_cuda(loaded.runtime, info) if ctx.device == "cuda" else None
if unmeasured:  # a figure of torch's allocator would read as the model's memory; say instead that it is not
    rec.record["metrics"] = memory.mark_unmeasured(rec.record["metrics"], unmeasured)
    rows = [memory.mark_unmeasured(r, unmeasured) if "peak_memory_mb" in r else r for r in rows]
rec.record["cells"] = rows
if profiles:
    rec.record["profiles"] = profiles
if checks:
    rec.record["fast_vs_eager"] = checks
if ctx.device == "cuda":
    rec.record["environment"] = {k: os.environ.get(k) for k in ("GPTQMODEL_TORCH_EXTENSIONS_DIR",
                                                                 "CUDA_VISIBLE_DEVICES", "TORCHINDUCTOR_CACHE_DIR")}
    rec.record["environment"]["torch_cuda"] = torch.version.cuda
rec.write(args.record)
