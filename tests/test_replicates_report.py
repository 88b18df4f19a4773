"""Calibration replicates end to end on a small toy: real Snakemake quantizes a GPTQ method from three
calibration draws with the real GPTQModel and evaluates each; the draws really differ (weights, records),
and the report folds them into one row whose run-inclusive interval holds the single run's."""
from __future__ import annotations

import copy
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from safetensors.torch import load_file

from quantbench import validation
from quantbench.records import load_records
from quantbench.report import figures, multiple, paired, replicates, tables
from quantbench.report.figures import quality as quality_figure
from quantbench.report.params import record_paths, report_params
from tests.conftest import ROOT, copy_project, snakemake
from tests.test_interrupt import SMALL

NAME = "replicates-toy"
R = f"results/{NAME}"
METHOD = "gptq-3bit-g32"
RUNS = [METHOD, f"{METHOD}~r2", f"{METHOD}~r3"]


def _config() -> dict:
    cfg = copy.deepcopy(SMALL)
    cfg["model"]["name"] = NAME
    cfg["data"]["calibration_samples"] = 16
    cfg["methods"] = {"fp32": {"backend": "none", "dtype": "float32"},
                      "bnb-nf4": {"backend": "bnb", "bits": 4, "quant_type": "nf4"},  # a method without replicates
                      METHOD: {"backend": "gptq", "bits": 3, "group_size": 32, "kernel": "torch", "replicates": 3}}
    cfg.pop("finetune")
    cfg.pop("benchmark")  # replicates are never benchmarked; the report reads quality alone
    cfg["evaluate"]["limit"] = 60  # enough items for an interval; the toy's tasks are tiny
    return cfg


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = copy_project(tmp_path_factory.mktemp("replicates"))
    (work / "rep.yaml").write_text(yaml.safe_dump(_config(), sort_keys=False))
    exp = validation.load(_config(), cuda_available=False, workdir=str(work), basedir=str(work))
    targets = [p.removeprefix(f"{work}/") for p in record_paths(exp, R)]
    snakemake(work, *targets, "--configfile", "rep.yaml", timeout=1500)
    return work, exp


def _weights(folder) -> dict:
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def test_each_replicate_quantizes_its_own_draw(run):
    work, _ = run
    weights = [_weights(work / R / "models" / v) for v in RUNS]
    packed = [k for k in weights[0] if k.endswith("qweight")]
    assert packed and all(set(w) == set(weights[0]) for w in weights)
    for i in range(len(RUNS)):
        for j in range(i + 1, len(RUNS)):  # every pair of runs differs somewhere in its quantized weights
            assert any(not np.array_equal(weights[i][k].numpy(), weights[j][k].numpy()) for k in packed), (i, j)
    recs = {v: json.loads((work / R / "records/quantize" / f"{v}.json").read_text()) for v in RUNS}
    draws = [recs[v]["calibration_draw"] for v in RUNS]
    assert [d["replicate"] for d in draws] == [1, 2, 3]
    assert draws[0]["seed"] == SMALL["seed"] and draws[0]["text_indices"] == list(range(16))
    assert len({d["seed"] for d in draws}) == 3 and len({d["texts_sha256"] for d in draws}) == 3
    for v, d in zip(RUNS, draws):
        assert recs[v]["params"]["seed"] == recs[v]["provenance"]["seed"] == d["seed"]
        assert len(d["text_indices"]) == 16 and recs[v]["params"]["method"]["name"] == METHOD
    assert draws[1]["pool_texts"] == 64  # the pool a replicate samples from: 4 x calibration_samples


def _report_inputs(work):
    paths = sorted(glob.glob(str(work / R / "records/*/*.json")))
    recs = load_records(paths)
    return recs, paired.items_beside(paths, recs)


def test_report_folds_the_runs_into_one_row_with_a_wider_interval(run):
    work, _ = run
    recs, items = _report_inputs(work)
    quality = tables.quality_table(recs, "fp32", items)
    assert sorted(quality.variant) == ["bnb-nf4", "fp32", METHOD]  # the replicates' rows are folded
    row = quality.set_index("variant").loc[METHOD]
    assert row.delta_noise_kind == replicates.KIND and row.runs == 3
    tasks = [t for t in items["fp32"]["tasks"]]
    single = paired.compare_items(items[METHOD], items["fp32"], tasks)
    # the property: items and runs resampled together give an interval at least as wide as one run's
    assert row.delta_ci95_high - row.delta_ci95_low >= single["high"] - single["low"]
    deltas = [paired.compare_items(items[v], items["fp32"], tasks)["delta"] for v in RUNS]
    assert row.delta_runs_mean_points == pytest.approx(np.mean(deltas))
    assert row.delta_average_points_runs_min == pytest.approx(min(deltas))
    assert row.delta_average_points_runs_max == pytest.approx(max(deltas))
    kls = [json.loads((work / R / "records/evaluate" / f"{v}.json").read_text())["metrics"]["kl_mean"] for v in RUNS]
    assert row.kl_mean_runs_sd == pytest.approx(np.std(kls, ddof=1))
    # Holm's family counts the method once, by its run-inclusive test; McNemar's p of run 1 stays beside it
    nf4 = quality.set_index("variant").loc["bnb-nf4"]
    assert pd.isna(nf4.p_runs) and nf4.delta_noise_kind == "paired"
    family = multiple.holm({"bnb-nf4": nf4.p_mcnemar, METHOD: row.p_runs})
    assert (nf4.p_holm, row.p_holm) == (pytest.approx(family["bnb-nf4"]), pytest.approx(family[METHOD]))
    assert row.p_mcnemar == multiple.mcnemar_exact_p(single["right_to_wrong"], single["wrong_to_right"])


def test_quality_figure_draws_the_method_at_its_runs_mean(run):
    work, _ = run
    recs, items = _report_inputs(work)
    params = {"baseline": "fp32", "bits_per_weight": {}, "generate": None, "stages": ["evaluate"]}
    data = figures.inputs(recs, params, items)
    # a summary as the benchmark would give it (replicates are not benchmarked: the method's row only)
    data.summary = pd.DataFrame({"variant": ["fp32", "bnb-nf4", METHOD], "weights_memory_mb": [4.0, 1.2, 1.0],
                                 "finetuned": False})
    points = quality_figure._points(data).set_index("variant")
    row = data.quality.set_index("variant").loc[METHOD]
    assert points.loc[METHOD, "delta_average_points"] == row.delta_runs_mean_points
    assert points.loc[METHOD, "kl_mean_ci95"] == row.kl_mean_ci95_runs > row.kl_mean_ci95
    _, caption = quality_figure.quality_vs_memory(data)
    assert f"{METHOD}: the mean of the method's calibration replicates" in caption


def test_report_script_writes_the_runs_table(run, tmp_path):
    work, exp = run
    paths = [p for p in record_paths(exp, str(work / R))]
    proc = subprocess.run([sys.executable, "workflow/scripts/report.py", "--params", json.dumps(report_params(exp)),
                           "--records", *paths, "--out", str(tmp_path)], cwd=work, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # as the workflow's jobs get it
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = (tmp_path / "replicates.csv").read_text().splitlines()
    assert len(runs) == 1 + len(RUNS) and all(v in "".join(runs) for v in RUNS)
    text = (tmp_path / "report.md").read_text()
    assert "### Calibration replicates" in text and "paired, runs included" not in text.split("## Quality")[0]
    assert f"{METHOD}~r2" not in (tmp_path / "quality.csv").read_text()


def test_one_run_gives_the_single_run_interval_and_spread_widens_it():
    rng = np.random.default_rng(0)
    base = {"t1": rng.integers(0, 2, 200), "t2": rng.integers(0, 2, 200)}
    run1 = {t: np.where(rng.random(200) < 0.1, 1 - b, b) for t, b in base.items()}
    pairs = {t: (run1[t], base[t]) for t in base}
    one = replicates.run_inclusive_bootstrap([pairs])
    assert (one["delta"], one["low"], one["high"]) == tuple(paired.paired_bootstrap(pairs)[k]
                                                           for k in ("delta", "low", "high"))
    same = replicates.run_inclusive_bootstrap([pairs, pairs, pairs])
    assert (same["low"], same["high"]) == (one["low"], one["high"])
    worse = {t: (np.where(rng.random(200) < 0.3, 0, run1[t]), base[t]) for t in base}  # a run that loses items
    both = replicates.run_inclusive_bootstrap([pairs, worse])
    assert both["high"] - both["low"] > one["high"] - one["low"]
    assert both["low"] <= both["delta"] <= both["high"]
