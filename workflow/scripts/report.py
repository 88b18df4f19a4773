"""Build the report from result records: tidy CSV tables, a markdown report and figures."""
import argparse
import json
from pathlib import Path

from quantbench.atomic import atomic_file
from quantbench.records import load_records
from quantbench.report import markdown, plots, tables

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", type=json.loads, required=True)
p.add_argument("--records", nargs="+", required=True)
p.add_argument("--out", required=True, help="report folder")
args = p.parse_args()
params = args.params
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
records = load_records(args.records)

bench = tables.benchmark_table(records)
quality = tables.quality_table(records, params["baseline"])
quant = tables.quantize_table(records)
finetune = tables.finetune_table(records)
summary = tables.summary_table(bench, quality, params["bits_per_weight"], params["generate"])

for name, df in {"benchmark": bench, "quality": quality, "quantize": quant, "finetune": finetune,
                 "summary": summary}.items():
    with atomic_file(out / f"{name}.csv") as tmp:
        df.to_csv(tmp, index=False)

figures = {"latency_vs_batch": "latency_vs_batch.png", "memory": "memory.png",
           "quality_vs_memory": "quality_vs_memory.png", "finetune_loss": "finetune_loss.png"}
draw = {"latency_vs_batch": lambda path: plots.latency_vs_batch(bench, path, max(params["generate"]["new_tokens"])),
        "memory": lambda path: plots.memory_per_variant(summary, path),
        "quality_vs_memory": lambda path: plots.quality_vs_memory(summary, path),
        "finetune_loss": lambda path: plots.loss_curves(tables.loss_curves(records), path)}
for name, plot in draw.items():
    with atomic_file(out / figures[name]) as tmp:  # the temporary name keeps the .png suffix
        plot(tmp)

text = markdown.render(params["title"], summary, bench, quality, finetune, quant, params["skipped"],
                       params["recipes"], records, figures, params["generate"])
with atomic_file(out / "report.md") as tmp:
    tmp.write_text(text)
print(text)
