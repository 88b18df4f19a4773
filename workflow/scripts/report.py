"""Build the report from result records: tidy CSV tables, a markdown report and figures."""
import argparse
import json
from pathlib import Path

from quantbench.atomic import atomic_file
from quantbench.records import load_records
from quantbench.report import engine_tables, figures, markdown, paired, sensitivity_tables, style, tables

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", type=json.loads, required=True)
p.add_argument("--records", nargs="+", required=True)
p.add_argument("--out", required=True, help="report folder")
args = p.parse_args()
params = args.params
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
records = load_records(args.records)

# per-item results beside the evaluate records, where the evaluate stage wrote them (not declared
# inputs: records made before them have none, and their rows keep the unpaired noise)
data = figures.inputs(records, params, paired.items_beside(args.records, records))
quant = tables.quantize_table(records)
csv = {"benchmark": data.bench, "quality": data.quality, "quantize": quant, "finetune": data.finetune,
       "summary": data.summary}
if "sensitivity" in params["stages"]:
    csv["sensitivity"] = sensitivity_tables.sensitivity_table(records)
if params.get("engines"):  # the serving engines' cells (benchmark.engines beyond builtin)
    csv["engines"] = engine_tables.engine_table(records, params.get("baseline"))
if not data.replicates.empty:  # the runs of methods with calibration replicates, beside their folded rows
    csv["replicates"] = data.replicates
# a speed-only setup gets no empty quality and fine-tune tables (report.smk lists the same set); records
# collected off a quality-only run (tools/gpu/make_report.py) get no empty benchmark table or speed figures
benchmarked = not data.bench.empty  # the same test the markdown and summary make
for name, stage in (("quality", "evaluate"), ("finetune", "finetune")):
    if stage not in params["stages"]:
        del csv[name]
if not benchmarked:
    del csv["benchmark"]
for name, df in csv.items():
    with atomic_file(out / f"{name}.csv") as tmp:
        df.to_csv(tmp, index=False)

drawn = []  # (name, file, caption)
for name in figures.wanted(params["stages"], benchmarked):
    fig, caption = figures.draw(name, data)
    with atomic_file(out / f"{name}.png") as tmp:  # the temporary name keeps the .png suffix
        style.save(fig, tmp)
    drawn.append((name, f"{name}.png", caption))

# A table or figure this setup no longer makes (its config changed, or another setup of the same model
# wrote this folder before) goes, so that the folder holds this report alone.
stale = ({f"{n}.csv" for n in ("summary", "benchmark", "quality", "quantize", "finetune", "sensitivity", "replicates",
                                 "engines")}
         | {f"{n}.png" for n in figures.FIGURES}) - {f"{n}.csv" for n in csv} - {f for _, f, _ in drawn}
for name in sorted(stale):
    (out / name).unlink(missing_ok=True)

text = markdown.render(data, quant, drawn)
if params.get("engines"):
    text += "\n" + "\n".join(engine_tables.engine_section(csv["engines"], params["engines"]["not_run"]))
with atomic_file(out / "report.md") as tmp:
    tmp.write_text(text)
print(text)
