"""A report rebuilt from records collected off a quality-only run (tools/gpu/make_report.py after a GPU job
that ran the evaluate targets alone): every evaluated variant in the tables and the recipe section,
and no empty speed table or figure."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from quantbench import validation
from quantbench.report.params import record_paths, report_params

ROOT = Path(__file__).resolve().parents[1]


def test_quality_only_records_make_a_report_without_speed_parts(tmp_path):
    shutil.copytree(ROOT / "results" / "reference" / "cpu" / "toy-llama" / "records", tmp_path / "records",
                    ignore=shutil.ignore_patterns("benchmark"))
    exp = validation.build(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()), cuda_available=False)
    records = [p for p in record_paths(exp, str(tmp_path)) if Path(p).exists()]
    assert records and not any("/benchmark/" in p for p in records)
    out = tmp_path / "report"
    subprocess.run([sys.executable, "workflow/scripts/report.py", "--params", json.dumps(report_params(exp)),
                    "--records", *records, "--out", str(out)], cwd=ROOT, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})

    written = {p.name for p in out.iterdir()}
    assert "benchmark.csv" not in written
    assert not written & {"decode_vs_memory.png", "throughput_vs_batch.png", "memory.png", "quality_vs_memory.png"}
    assert {"report.md", "quality.csv", "summary.csv", "recipe_kl.png", "finetune_loss.png"} <= written

    evaluated = sorted(p.stem for p in (tmp_path / "records" / "evaluate").glob("*.json"))
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary.variant) == evaluated
    assert summary.Average.notna().all()
    text = (out / "report.md").read_text()
    assert "## Inference" not in text
    recipe = text.split("## The recipe")[1].split("\n## ")[0]
    assert "+merge-" in recipe and "none of its variants has records" not in recipe


def test_a_finetune_only_setup_plans_and_reports_its_table_alone(tmp_path):
    """A setup without benchmark: or evaluate: (config/llama2-7b-finetune.yaml's shape) asks for no
    benchmark record, and its report is the fine-tune table with the quantize table, nothing empty."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for key in ("benchmark", "evaluate", "recipes", "sensitivity"):
        cfg.pop(key, None)
    # the measured mix reads the sensitivity stage's records
    cfg["methods"] = {k: m for k, m in cfg["methods"].items() if not m.get("mix")}
    exp = validation.build(cfg, cuda_available=False)
    shutil.copytree(ROOT / "results" / "reference" / "cpu" / "toy-llama" / "records", tmp_path / "records")
    planned = record_paths(exp, str(tmp_path))
    assert planned and not any("/benchmark/" in p or "/evaluate/" in p for p in planned)
    assert any("/finetune/" in p for p in planned)
    out = tmp_path / "report"
    out.mkdir()  # what an earlier setup of the same model left there: this report is the folder's alone
    (out / "benchmark.csv").write_text("variant\nstale\n")
    (out / "decode_vs_memory.png").write_bytes(b"stale")
    subprocess.run([sys.executable, "workflow/scripts/report.py", "--params", json.dumps(report_params(exp)),
                    "--records", *[p for p in planned if Path(p).exists()], "--out", str(out)], cwd=ROOT,
                   check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    written = {p.name for p in out.iterdir()}
    assert {"report.md", "finetune.csv", "quantize.csv"} <= written
    assert not written & {"benchmark.csv", "quality.csv", "decode_vs_memory.png", "quality_vs_memory.png"}
    assert len(pd.read_csv(out / "finetune.csv")) == len(exp.finetune_bases)
