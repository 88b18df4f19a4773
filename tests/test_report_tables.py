import pandas as pd
import pytest

from quantbench.report import tables
from quantbench.report.pareto import pareto_front


def _eval_record(variant, tasks, kl):
    return {"stage": "evaluate", "subject": variant, "reference": "fp32",
            "params": {"evaluate": {"suite": "toy"}},
            "metrics": {"tasks": tasks, "kl_mean": kl, "kl_p99": kl, "top1_agreement": 1 - kl,
                        "perplexity": 2.0, "perplexity_ratio": 1 + kl}}


def test_quality_table_average_is_mean_of_task_columns():
    recs = [_eval_record("fp32", {"toy_capitals": 1.0, "toy_flags": 0.5, "toy_arithmetic": 0.75,
                                  "toy_heldout": 3.0}, 0.0),
            _eval_record("gptq-2bit", {"toy_capitals": 0.5, "toy_flags": 0.25, "toy_arithmetic": 0.25,
                                       "toy_heldout": 9.0}, 0.5)]
    q = tables.quality_table(recs, "fp32")
    for _, row in q.iterrows():
        assert row["Average"] == sum(row[c] for c in ("capitals", "flags", "arithmetic")) / 3
    assert q.loc[q.variant == "fp32", "Average"].item() == 75.0
    assert q.loc[q.variant == "gptq-2bit", "delta_average_points"].item() == pytest.approx(100 / 3 - 75.0)
    assert "heldout_word_perplexity" in q.columns and "heldout" not in q.columns


def test_pareto_front():
    df = pd.DataFrame({"variant": list("abcd"), "mb": [1, 2, 3, 4], "q": [50, 40, 70, 60]})
    front = pareto_front(df, "mb", "q", higher_is_better=True)
    assert list(front.variant) == ["a", "c"]


def _bench_record(variant, checks):
    cell = {"scenario": "generate", "batch_size": 1, "use_cache": True, "outcome": "ok",
            "decode_step_ms": 1.0, "decode_roofline_pct": 50.0, "iqr_over_median": 0.01}
    return {"stage": "benchmark", "subject": variant, "kernel": "k",
            "cells": [{**cell, "mode": "eager", "new_tokens": 30}, {**cell, "mode": "eager", "new_tokens": 512},
                      {**cell, "mode": "graphs", "new_tokens": 512}, {**cell, "mode": "compiled", "new_tokens": 512},
                      {**cell, "mode": "graphs", "new_tokens": 30, "batch_size": 16}],
            "fast_vs_eager": checks}


def test_fast_decode_table_marks_token_checks():
    rec = _bench_record("gptq", [{"mode": "graphs", "new_tokens": 30, "identical": False, "first_difference_at": 1},
                                 {"mode": "compiled", "new_tokens": 30, "identical": True},
                                 {"mode": "graphs", "batch_size": 16, "new_tokens": 30, "identical": True}])
    fast = tables.fast_decode_table([rec])
    assert list(zip(fast["mode"], fast["batch_size"])) == [("eager", 1), ("graphs", 1), ("compiled", 1), ("graphs", 16)]
    assert list(fast["new_tokens"]) == [512, 512, 512, 30]  # the longest generation of each mode and batch size
    checks = dict(zip(zip(fast["mode"], fast["batch_size"]), fast["token_check"]))
    assert checks[("graphs", 1)] == "differs from token 1 (suspect)"
    assert checks[("compiled", 1)] == "identical over 30 tokens" and checks[("eager", 1)] is None
    assert checks[("graphs", 16)] == "identical over 30 tokens"  # each batch size has its own check
    unchecked = tables.fast_decode_table([_bench_record("fp16", [])])
    assert set(unchecked.loc[unchecked["mode"] != "eager", "token_check"]) == {"not checked"}
    late = tables.token_check(_bench_record("fp16", [{"mode": "graphs", "new_tokens": 30, "identical": False,
                                                       "first_difference_at": 15}]), "graphs")
    assert late == "differs from token 15"
    some = tables.token_check(_bench_record("nf4", [{"mode": "graphs", "batch_size": 16, "new_tokens": 64,
                                                      "identical": False, "first_difference_at": 1,
                                                      "sequences_identical": 5}]), "graphs", batch_size=16)
    assert some == "differs from token 1 in some sequences (5 of 16 identical)"
    failed = tables.token_check(_bench_record("nf4", [{"mode": "graphs", "error": "AcceleratorError: x\nmore"}]),
                                "graphs")
    assert failed == "check failed: AcceleratorError: x"


def test_pareto_front_steps_only_beyond_the_noise():
    # b beats a by less than their combined 95% noise, c beats a by more: only c joins the front
    hw = 1.0
    noise = (2 * hw * hw) ** 0.5
    df = pd.DataFrame({"variant": list("abc"), "mb": [1, 2, 3], "hw": [hw] * 3,
                       "q": [50, 50 + 0.9 * noise, 50 + 1.1 * noise]})
    assert list(pareto_front(df, "mb", "q", True, "hw").variant) == ["a", "c"]
    assert list(pareto_front(df, "mb", "q", True).variant) == ["a", "b", "c"]  # no noise: any gain counts


def test_markdown_marks_a_delta_inside_the_noise():
    from quantbench.report.markdown import noise_marked

    q = pd.DataFrame({"variant": ["fp32", "near", "far"], "delta_average_points": [0.0, -0.5, -5.0],
                      "delta_noise_points": [None, 2.0, 2.0], "within_noise": [None, True, False]})
    shown = noise_marked(q).set_index("variant")
    assert shown.loc["near", "delta_average_points"].endswith("≈")
    assert "≈" not in shown.loc["far", "delta_average_points"]
    assert shown.loc["fp32", "delta_noise_95"] == "baseline" and "within_noise" not in shown


def test_noisy_cells_say_why_their_spread_stands():
    bench = pd.DataFrame([
        {"variant": "a", "scenario": "generate", "mode": "eager", "batch_size": 1, "outcome": "ok",
         "iqr_over_median": 0.12, "attempts": 3, "spread_above_limit": True},
        {"variant": "b", "scenario": "prefill", "mode": None, "batch_size": 4, "outcome": "ok",
         "iqr_over_median": 0.09, "attempts": float("nan"), "spread_above_limit": float("nan")},
        {"variant": "c", "scenario": "prefill", "mode": None, "batch_size": 1, "outcome": "ok",
         "iqr_over_median": 0.01, "attempts": 1, "spread_above_limit": False},
        {"variant": "d", "scenario": "generate", "mode": "eager", "batch_size": 1, "outcome": "error",
         "iqr_over_median": float("nan"), "attempts": float("nan"), "spread_above_limit": float("nan")},
    ])
    assert tables.noisy_cells(bench) == [
        "a generate eager bs=1: 0.12 (after 3 measurements)",
        "b prefill bs=4: 0.09 (measured once, before the benchmark re-measured noisy cells)"]
