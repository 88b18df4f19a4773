"""Evaluate one variant: lm-eval suite, and KL / top-1 agreement / perplexity ratio against its reference."""
import torch

from quantbench import cli, distribution, lmeval
from quantbench.atomic import write_json
from quantbench.loading import load
from quantbench.modelio import RunContext
from quantbench.records import Recorder

p = cli.parser(__doc__)
p.add_argument("--model", required=True)
p.add_argument("--adapter")
p.add_argument("--reference", required=True, help="reference log-probs (.pt)")
p.add_argument("--data", help="local data folder of the toy suite")
p.add_argument("--record", required=True)
p.add_argument("--lm-eval-out", required=True)
p.add_argument("--items-out", required=True, help="per-item outcomes (quantbench/report/paired.py)")
args = p.parse_args()
params = cli.setup(args)
ctx = RunContext(device=params["device"], dtype_name=params["dtype"], seed=params["seed"])
ev = params["evaluate"]
rec = Recorder("evaluate", params["variant"], params, ctx.device, ctx.seed)
loaded, tokenizer, info = load(args.model, ctx, adapter=args.adapter)
model = loaded.model

ref = torch.load(args.reference)
# llama.cpp scores each window where its logits are (its worker process, on a GPU run)
scores = model.window_scores if loaded.runtime == "llama.cpp" else None
dist = distribution.compare_model(ref["summary"], model, ref["windows"], ctx.device, ev["batch_size"],
                                  window_scores=scores)
dist["distribution_top_k"] = ref.get("top_k")
tasks, raw = lmeval.evaluate(model, tokenizer, ev["suite"], {**ev, "seed": ctx.seed}, data_dir=args.data,
                             runtime=loaded.runtime)
# per-item outcomes beside lm-eval's JSON: the report's paired task noise
write_json(args.items_out, raw.pop("quantbench_items"))
write_json(args.lm_eval_out, raw)
rec.record["kernel"] = info["kernel"]
rec.record["reference"] = ref["variant"]
rec.record["metrics"] = {**dist, "tasks": tasks, "tasks_stderr": raw.pop("quantbench_stderr")}
rec.write(args.record)
