"""Holm's correction over the variant-against-baseline tests (quantbench/report/multiple.py): the exact
McNemar p-value and Holm's step-down on known cases, and one corrected p-value of the committed SmolLM2
report recomputed from the per-item files alone."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from quantbench.report import multiple
from tests.conftest import ROOT

SMOL = ROOT / "results" / "reference" / "cpu" / "smollm2-135m"


def test_mcnemar_exact_p_is_the_two_sided_binomial_tail_of_the_flips():
    assert multiple.mcnemar_exact_p(6, 0) == pytest.approx(2 / 2 ** 6)  # six lost, none gained
    assert multiple.mcnemar_exact_p(0, 0) == 1.0
    assert multiple.mcnemar_exact_p(5, 5) == 1.0  # capped
    # 3 of 10 against: 2 * (1 + 10 + 45 + 120) / 1024
    assert multiple.mcnemar_exact_p(3, 7) == pytest.approx(2 * 176 / 1024)


def test_holm_steps_down_and_stays_monotone():
    adjusted = multiple.holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005})
    # sorted: d 0.005 x4, a 0.01 x3, c 0.03 x2, b 0.04 x1 (then made monotone)
    assert adjusted == pytest.approx({"d": 0.02, "a": 0.03, "c": 0.06, "b": 0.06})
    assert multiple.holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}


def _items(variant: str) -> dict:
    return json.loads((SMOL / "lm_eval" / f"{variant}.items.json").read_text())["tasks"]


def test_one_corrected_p_value_of_the_committed_report_comes_back_from_the_per_item_files():
    quality = pd.read_csv(SMOL / "report" / "quality.csv").set_index("variant")
    base = _items("fp32")
    raw = {}
    for variant in quality.index[quality.p_mcnemar.notna()]:
        lost = gained = 0
        for task, mine in _items(variant).items():
            assert mine["doc_ids"] == base[task]["doc_ids"]
            for a, b in zip(mine["correct"], base[task]["correct"]):
                lost += b and not a
                gained += a and not b
        raw[variant] = multiple.mcnemar_exact_p(lost, gained)
    assert len(raw) == 26  # every variant but the baseline, the recipe's rows included
    adjusted = multiple.holm(raw)
    assert quality.at["gptq-4bit-g64-act", "p_holm"] == pytest.approx(adjusted["gptq-4bit-g64-act"], rel=1e-9)
    # findings read alone, not after the correction (the third, AWQ, is no finding at all since
    # its calibration fix)
    for variant in ("gptq-4bit-g64-act", "gptq-8bit-g64"):
        assert raw[variant] < 0.05 <= adjusted[variant]
        assert not quality.at[variant, "finding_holm"]
    assert raw["awq-4bit-g64"] > 0.05 and not quality.at["awq-4bit-g64", "finding_holm"]


def test_the_smollm2_reading_quotes_the_corrected_p_values_of_its_report():
    import re

    quality = pd.read_csv(SMOL / "report" / "quality.csv").set_index("variant")
    text = " ".join((SMOL / "README.md").read_text().split())
    reading = text[text.index("With Holm's correction"):].split(" stay findings.")[0]

    def shown(x: float) -> str:
        return f"{x:.2g}" if x < 0.1 else f"{x:.2f}"

    for variant, label in (("gptq-4bit-g64-act", "act-order"), ("gptq-8bit-g64", "six lost items")):
        part = reading[reading.index(label):]
        raw, corrected = re.search(r"\(p? ?([\d.]+), corrected ([\d.]+)\)", part).groups()
        assert (raw, corrected) == (shown(quality.at[variant, "p_mcnemar"]), shown(quality.at[variant, "p_holm"]))
        assert not quality.at[variant, "finding_holm"]
    awq = reading[reading.index("AWQ"):]
    assert re.search(r"\(([\d.]+) since its fix", awq)[1] == shown(quality.at["awq-4bit-g64", "p_mcnemar"])
    assert shown(quality.at["bnb-nf4", "p_holm"]) in reading and quality.at["bnb-nf4", "finding_holm"]
    assert shown(quality.at["hqq-4bit-g64", "p_holm"]) in reading and quality.at["hqq-4bit-g64", "finding_holm"]
    assert quality.at["gguf-q4_k_m", "finding_holm"] and quality.at["gptq-4bit-g64", "finding_holm"]


def test_the_h100_replicates_run_recomputes_from_its_per_item_files():
    """The committed GPU run with calibration replicates: each calibrated method's run-inclusive interval
    and p-value, and Holm's correction over its family (a calibrated method counted once, by p_runs),
    come back from the per-item files alone."""
    from quantbench.report import replicates

    run = ROOT / "results" / "reference" / "h100" / "smollm2-135m-cuda-replicates"
    quality = pd.read_csv(run / "report" / "quality.csv").set_index("variant")

    def items(variant):
        return json.loads((run / "lm_eval" / f"{variant}.items.json").read_text())

    base = items("fp32")
    tasks = list(base["tasks"])
    raw = {}
    for variant in quality.index[quality.p_mcnemar.notna()]:
        if pd.notna(quality.at[variant, "p_runs"]):
            runs = [items(v) for v in (variant, f"{variant}~r2", f"{variant}~r3")]
            got = replicates.compare_runs(runs, base, tasks)
            assert got["runs"] == 3
            for key, column in (("delta", "delta_runs_mean_points"), ("low", "delta_ci95_low"),
                                ("high", "delta_ci95_high"), ("p", "p_runs")):
                assert got[key] == pytest.approx(quality.at[variant, column], rel=1e-9), (variant, key)
            raw[variant] = got["p"]
            continue
        flips = [(b and not a, a and not b) for t in tasks
                 for a, b in zip(items(variant)["tasks"][t]["correct"], base["tasks"][t]["correct"])]
        raw[variant] = multiple.mcnemar_exact_p(sum(x for x, _ in flips), sum(y for _, y in flips))
    assert len(raw) == 11 and sorted(v for v in raw if pd.notna(quality.at[v, "p_runs"])) == [
        "awq-4bit-g64", "gptq-3bit-g64", "gptq-4bit-g64", "gptq-4bit-g64-act"]
    adjusted = multiple.holm(raw)
    for variant, p in adjusted.items():
        assert quality.at[variant, "p_holm"] == pytest.approx(p, rel=1e-9), variant
    # the reading: AWQ holds zero with its runs, act-order loses beyond the noise after the correction
    assert quality.at["awq-4bit-g64", "delta_ci95_low"] < 0 < quality.at["awq-4bit-g64", "delta_ci95_high"]
    assert quality.at["gptq-4bit-g64-act", "finding_holm"] and not quality.at["torchao-fp8dyn", "finding_holm"]
