"""tools/compare_devices.py on the committed CPU and H200 results of SmolLM2 (docs/cpu-vs-gpu.md is
its output), and the noise rule on two records made to differ."""
from __future__ import annotations

import json
import subprocess
import sys

from quantbench.report.devices import beyond_noise, comparison
from tests.conftest import ROOT

CPU = ROOT / "results" / "reference" / "cpu" / "smollm2-135m"
GPU = ROOT / "results" / "reference" / "h200" / "smollm2-135m-cuda-quality"


def test_the_committed_cpu_and_gpu_results_compare_as_docs_say():
    table = comparison(CPU, GPU)
    assert table["variant"].nunique() == 27
    agree = {v for v, rows in table.groupby("variant") if rows["within_noise"].all()}
    assert {"fp32", "bnb-nf4", "bnb-int8", "torchao-int8wo", "hqq-4bit-g64", "gguf-q4_k_m",
            "torchao-int8dyn"} <= agree  # int8 dynamic since its CPU row was made without the oneDNN cap
    assert len(agree) == 21
    moved = beyond_noise(table)
    assert set(moved[moved["variant"] == "gptq-8bit-g64"]["figure"]) == {"kl_mean", "top1_agreement"}
    out = subprocess.run([sys.executable, "tools/compare_devices.py", str(CPU), str(GPU), "--names", "CPU", "H200"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (ROOT / "docs" / "cpu-vs-gpu.md").read_text().split("## Every figure\n\n", 1)[1] + "\n"
    assert "27 variants, 135 figures, 10 beyond the noise" in out.stderr


def _record(folder, variant, kl, kl_ci, task, stderr):
    path = folder / "records" / "evaluate" / f"{variant}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"stage": "evaluate", "subject": variant, "status": "ok", "kernel": "k",
                                "metrics": {"kl_mean": kl, "kl_mean_ci95": kl_ci, "tasks": {"t": task},
                                            "tasks_stderr": {"t": stderr}}}))


def test_a_difference_counts_only_beyond_both_intervals_combined(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _record(a, "v", 0.100, 0.003, 0.50, 0.01)
    _record(b, "v", 0.104, 0.003, 0.56, 0.01)  # KL: 0.004 < hypot(0.003, 0.003) = 0.0042; task: 0.06 > 0.0277
    rows = comparison(a, b).set_index("figure")
    assert bool(rows.loc["kl_mean", "within_noise"]) is True
    assert bool(rows.loc["task:t", "within_noise"]) is False
    out = subprocess.run([sys.executable, "tools/compare_devices.py", str(a), str(tmp_path / "nowhere")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "has no records/evaluate folder" in out.stderr
