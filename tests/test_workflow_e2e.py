"""The whole toy DAG, run by real Snakemake on real libraries; then a config change reruns exactly
the jobs it affects."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from quantbench import validation
from tests.conftest import copy_project, snakemake

R = "results/toy-llama"


@pytest.fixture(scope="module")
def exp(toy_run):
    config = yaml.safe_load((toy_run / "config/config.yaml").read_text())
    return validation.build(config, cuda_available=False, model_dims=[192, 512])


def _record(run: Path, stage: str, name: str) -> dict:
    return json.loads((run / R / "records" / stage / f"{name}.json").read_text())


def test_every_expected_result_exists(toy_run, exp):
    for v in exp.variants:
        for stage in ("benchmark", "evaluate"):
            rec = _record(toy_run, stage, v.name)
            assert rec["status"] == "ok" and rec["subject"] == v.name
            prov = rec["provenance"]
            assert prov["libraries"]["torch"] and prov["seed"] == exp.config["seed"] and prov["started"]
    for base in exp.finetune_bases:
        assert (toy_run / R / "adapters" / f"{base}+lora" / "adapter_config.json").exists()
    from quantbench.report.figures import FIGURES

    for name in ["report.md", "summary.csv", "benchmark.csv", "quality.csv", "quantize.csv", "finetune.csv",
                 *(f"{f}.png" for f in FIGURES)]:
        path = toy_run / R / "report" / name
        assert path.exists() and path.stat().st_size > 0, name
    assert not list((toy_run / R).rglob(".tmp-*")), "temporary outputs left behind"


def test_all_three_pipelines_in_the_report(toy_run):
    summary = pd.read_csv(toy_run / R / "report" / "summary.csv")
    names = set(summary.variant)
    assert {"bnb-nf4+lora", "gptq-4bit-g32+lora", "bnb-nf4+lora+merge-fp+gptq-4bit-g32",
            "bnb-nf4+lora+merge-dequant+gptq-4bit-g32"} <= names
    report = (toy_run / R / "report" / "report.md").read_text()
    assert "## The recipe" in report and "bnb-nf4+lora+merge-dequant+gptq-4bit-g32" in report


def test_nf4_takes_less_memory_than_baseline(toy_run):
    s = pd.read_csv(toy_run / R / "report" / "summary.csv").set_index("variant")
    memory = s["weights_memory_mb"]
    assert memory["bnb-nf4"] < memory["bnb-int8"] < memory["fp32"]
    assert s.loc["gptq-4bit-g32", "weights_memory_mb"] < s.loc["gptq-8bit-g32", "weights_memory_mb"]
    sizes = pd.read_csv(toy_run / R / "report" / "quantize.csv").set_index("variant")
    assert sizes.loc["bnb-nf4", "size_on_disk_mb"] < sizes.loc["fp32", "size_on_disk_mb"]


def test_gptq_damage_grows_as_bits_shrink(toy_run):
    kl = {b: _record(toy_run, "evaluate", f"gptq-{b}bit-g32")["metrics"]["kl_mean"] for b in (2, 3, 4, 8)}
    assert kl[2] > kl[3] > kl[4] > kl[8] >= 0, kl
    top1 = {b: _record(toy_run, "evaluate", f"gptq-{b}bit-g32")["metrics"]["top1_agreement"] for b in (2, 8)}
    assert top1[2] < top1[8]


def test_quality_of_the_toy_model_is_measurable(toy_run):
    base = _record(toy_run, "evaluate", "fp32")["metrics"]
    assert base["kl_mean"] < 1e-6 and base["top1_agreement"] == 1.0  # the baseline against itself
    assert base["tasks"]["toy_capitals"] > 0.5  # the toy model learned its facts (chance is 0.25)


def test_merge_into_dequantized_base_reproduces_the_trained_model_best(toy_run):
    dequant = _record(toy_run, "evaluate", "bnb-nf4+lora+merge-dequant")["metrics"]["kl_mean"]
    fp = _record(toy_run, "evaluate", "bnb-nf4+lora+merge-fp")["metrics"]["kl_mean"]
    assert dequant < fp


def test_benchmark_records_kernels_and_cells(toy_run, exp):
    rec = _record(toy_run, "benchmark", "gptq-4bit-g32")
    assert "TorchLinear" in rec["kernel"]
    assert _record(toy_run, "benchmark", "bnb-nf4")["kernel"].startswith("bnb-nf4")
    spec = exp.config["benchmark"]
    gen = [c for c in rec["cells"] if c["scenario"] == "generate"]
    assert len(gen) == len(spec["generate"]["batch_sizes"]) * len(spec["generate"]["new_tokens"]) * 2
    for cell in rec["cells"]:
        assert cell["outcome"] == "ok" and cell["repeats"] == spec["repeats"] and cell["median_s"] > 0
    ft = _record(toy_run, "finetune", "bnb-nf4")["metrics"]
    assert ft["finetune_step_ms"] > 0 and ft["loss_last"] < ft["loss_first"]


def _jobs_in_dry_run(output: str) -> dict[str, int]:
    table = output[output.index("Job stats:"):]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\S+)\s+(\d+)$", table, re.M) if m[1] != "total"}


def test_changing_one_method_reruns_only_its_downstream_jobs(toy_run, tmp_path):
    assert "Nothing to be done" in snakemake(toy_run, "-n").stdout
    work = _copy_of_run(toy_run, tmp_path)
    cfg = yaml.safe_load((work / "config/config.yaml").read_text())
    cfg["methods"]["gptq-3bit-g32"]["damp_percent"] = 0.1
    (work / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = snakemake(work, "-n").stdout
    # gptq-3bit-g32 is measured by the sensitivity stage, whose records the measured mix allocates from:
    # its sensitivity job and that mix follow it; the k-quant mix (no sensitivity input) does not
    assert _jobs_in_dry_run(out) == {"quantize": 2, "benchmark": 2, "evaluate": 2, "sensitivity": 1, "report": 1,
                                     "all": 1}, out
    assert "wildcards: method=gptq-3bit-g32" in out and "wildcards: variant=gptq-3bit-g32" in out
    assert "wildcards: method=gptq-mix34-measured" in out and "wildcards: method=gptq-mix34-kquant" not in out


def test_quality_table_reads_like_the_leaderboard(toy_run):
    q = pd.read_csv(toy_run / R / "report" / "quality.csv")
    tasks = ["capitals", "flags", "arithmetic"]
    assert list(q.columns[:2]) == ["variant", "Average"]
    assert (q[tasks].mean(axis=1) - q["Average"]).abs().max() < 1e-9
    base = q.set_index("variant").loc["fp32"]
    assert (q["delta_average_points"] - (q["Average"] - base["Average"])).abs().max() < 1e-9
    dist = q.set_index("variant")
    for metric, worse in (("kl_mean", max), ("kl_p99", max), ("top1_agreement", min), ("perplexity_ratio", max)):
        values = {b: dist.loc[f"gptq-{b}bit-g32", metric] for b in (2, 4, 8)}
        assert worse(values.values()) == values[2], (metric, values)


def _copy_of_run(toy_run, tmp_path) -> Path:
    """A copy of the finished toy run (code, its config, results, Snakemake's metadata) to change
    things in. The results are hard links (the tests only dry-run or delete a file there, which
    leaves the run's own copy alone): the same files and modification times, without copying every
    model."""
    work = copy_project(tmp_path)
    shutil.copy(toy_run / "config" / "config.yaml", work / "config" / "config.yaml")  # conftest.TOY_RUN_CELLS
    shutil.copytree(toy_run / "results", work / "results", symlinks=True, copy_function=os.link)
    shutil.copytree(toy_run / ".snakemake", work / ".snakemake", symlinks=True,
                    ignore=shutil.ignore_patterns("locks", "incomplete"))
    return work


def _rerun_wildcards(output: str) -> set[str]:
    return set(re.findall(r"wildcards: (\S+)", output))


def test_a_deleted_record_is_made_again(toy_run, tmp_path):
    work = _copy_of_run(toy_run, tmp_path)
    (work / R / "records/quantize/bnb-int8.json").unlink()
    out = snakemake(work, "-n").stdout
    # The quantize job writes the model with its record: that method's measurements follow, nothing else.
    assert _jobs_in_dry_run(out) == {"quantize": 1, "benchmark": 1, "evaluate": 1, "report": 1, "all": 1}, out
    assert _rerun_wildcards(out) == {"method=bnb-int8", "variant=bnb-int8"}, out


def test_a_backend_edit_reruns_the_jobs_that_load_it(toy_run, tmp_path, exp):
    work = _copy_of_run(toy_run, tmp_path)
    with open(work / "quantbench/backends/gptq.py", "a") as f:
        f.write("# edited\n")
    out = snakemake(work, "-n").stdout
    gptq = {m for m in exp.runnable if exp.methods[m].backend == "gptq"}
    served = {v.name for v in exp.variants if exp.serving_method(v).backend == "gptq"}
    assert _jobs_in_dry_run(out)["quantize"] == len(gptq), out
    assert {f"method={m}" for m in gptq} <= _rerun_wildcards(out)
    assert {w.removeprefix("variant=") for w in _rerun_wildcards(out) if w.startswith("variant=")} == served, out
    assert "reference_logprobs" not in _jobs_in_dry_run(out)  # the references are not served by GPTQ


def test_a_report_edit_reruns_only_the_report(toy_run, tmp_path):
    work = _copy_of_run(toy_run, tmp_path)
    with open(work / "quantbench/report/tables.py", "a") as f:
        f.write("# edited\n")
    out = snakemake(work, "-n").stdout
    assert _jobs_in_dry_run(out) == {"report": 1, "all": 1}, out
