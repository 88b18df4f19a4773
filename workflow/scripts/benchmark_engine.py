"""Benchmark one variant through one serving engine (quantbench.engines): decode per token at each batch
size, prefill, and an offline throughput batch, the same cells for every engine (quantbench.engines.cells)."""
import json
import logging
import time
from pathlib import Path

from quantbench import cli
from quantbench.engines import cells
from quantbench.modelio import read_meta
from quantbench.records import Recorder

p = cli.parser(__doc__)
p.add_argument("--model", required=True)
p.add_argument("--engine", required=True)
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
log = logging.getLogger("benchmark_engine")
spec = cells.filled((params.get("benchmark") or {}).get("engine_cells"))
longest, widest = cells.extent(spec)
meta = read_meta(args.model)

t0 = time.perf_counter()
if args.engine == "builtin":
    from quantbench.engines.builtin_runner import BuiltinRunner
    from quantbench.modelio import RunContext

    ctx = RunContext(device=params["device"], dtype_name=params["dtype"], seed=int(params["seed"]))
    runner = BuiltinRunner(args.model, ctx, spec["builtin_mode"], longest)
elif args.engine == "llamacpp":
    from quantbench.engines.llamacpp_runner import LlamaCppRunner
    from quantbench.llamacpp import gpu_layers

    runner = LlamaCppRunner(args.model, args.threads, gpu_layers(meta["params"]), longest)
elif args.engine == "vllm":
    from quantbench.engines.vllm_runner import VllmRunner

    runner = VllmRunner(args.model, params["dtype"], int(params["seed"]), longest, widest,
                        **(params.get("benchmark") or {}).get("vllm", {}))
else:
    raise SystemExit(f"--engine {args.engine!r}; allowed: builtin, llamacpp, vllm")
load_s = time.perf_counter() - t0
if widest > runner.max_batch:
    raise SystemExit(f"benchmark.engine_cells asks for {widest} rows at once and {args.engine} takes at most "
                     f"{runner.max_batch} here")
config = json.loads((Path(args.model) / "config.json").read_text())
avoid = set()
for key in ("eos_token_id", "pad_token_id", "bos_token_id"):
    value = config.get(key)
    avoid |= set(value) if isinstance(value, list) else ({value} if value is not None else set())

rec = Recorder("engine", f"{args.engine}/{params['variant']}", params, params["device"], int(params["seed"]))
try:
    out = cells.run(runner, spec, runner.vocab_size, int(params["seed"]), avoid, progress=log.info)
    rec.record["engine"] = runner.info()
finally:
    runner.close()
rec.record["backend"] = meta["backend"]
rec.record["metrics"] = {"load_s": load_s}
rec.record["cells"] = out
rec.write(args.record)
