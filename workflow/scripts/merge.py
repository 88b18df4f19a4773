"""Merge a LoRA adapter into the full-precision base ("fp") or the dequantized base ("dequant")."""
import time

from quantbench import cli
from quantbench.atomic import atomic_dir
from quantbench.merge import merged_model
from quantbench.modelio import RunContext, folder_size_mb, load_tokenizer, write_meta
from quantbench.records import Recorder

p = cli.parser(__doc__)
p.add_argument("--adapter", required=True)
p.add_argument("--fp-base", required=True)
p.add_argument("--quantized-base", required=True)
p.add_argument("--out", required=True)
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
ctx = RunContext(device=params["device"], dtype_name=params["dtype"], seed=params["seed"])
rec = Recorder("merge", params["variant"], params, ctx.device, ctx.seed)
t0 = time.perf_counter()
model = merged_model(params["kind"], args.adapter, args.fp_base, args.quantized_base, ctx)
baseline = params["baseline"]
with atomic_dir(args.out) as tmp:
    model.save_pretrained(tmp)
    load_tokenizer(args.fp_base).save_pretrained(tmp)
    write_meta(tmp, {"method": baseline["name"], "backend": "none", "params": baseline["params"],
                     "merged": {"adapter": args.adapter, "kind": params["kind"]}})
    size = folder_size_mb(tmp)
rec.record["metrics"] = {"merge_s": time.perf_counter() - t0, "size_on_disk_mb": size}
rec.write(args.record)
