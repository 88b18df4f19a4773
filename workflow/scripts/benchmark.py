"""Benchmark one variant: load time, prefill and generate grids, peak memory, decode roofline."""
import logging
import time

from quantbench import benchmark, cli, memory, timing
from quantbench.modelio import RunContext, load_model
from quantbench.records import Recorder

p = cli.parser(__doc__)
p.add_argument("--model", required=True)
p.add_argument("--adapter")
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
spec = params["benchmark"]
ctx = RunContext(device=params["device"], dtype_name=params["dtype"], seed=params["seed"])
rec = Recorder("benchmark", params["variant"], params, ctx.device, ctx.seed)

memory.reset(ctx.device)
with memory.PeakMemory(ctx.device) as load_peak:
    t0 = time.perf_counter()
    model, tokenizer, info = load_model(args.model, ctx, adapter=args.adapter)
    load_s = time.perf_counter() - t0
weights_mb = memory.model_weights_mb(model)
bandwidth = timing.measure_copy_bandwidth_gb_per_s(ctx.device) if spec.get("roofline", True) else None
logging.info("loaded in %.2f s, weights %.1f MB, kernel %s", load_s, weights_mb, info["kernel"])

vocab = model.config.vocab_size
avoid = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id) if t is not None}
common = dict(model=model, vocab_size=vocab, device=ctx.device, warmup=spec["warmup"],
              repeats=spec["repeats"], seed=ctx.seed, avoid=avoid)
rows = benchmark.run_prefill(spec=spec["prefill"], **common)
kv_bytes = 2 if ctx.dtype_name in ("float16", "bfloat16") else 4
for mode in spec["generate"].get("modes", ["eager"]):
    rows += benchmark.run_generate(spec=spec["generate"], pad_token_id=tokenizer.pad_token_id,
                                   weights_mb=weights_mb, bandwidth_gb_per_s=bandwidth,
                                   kv_bytes=kv_bytes, mode=mode, **common)
rec.record["kernel"] = info["kernel"]
rec.record["load"] = info
rec.record["metrics"] = {"load_s": load_s, "weights_memory_mb": weights_mb,
                         "load_peak_memory_mb": load_peak.result["peak_memory_mb"],
                         "copy_bandwidth_gb_per_s": bandwidth}
rec.record["cells"] = rows
rec.write(args.record)
