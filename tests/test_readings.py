"""Comparative words (quantbench/report/readings.py) on hand-made figures, and the comparative claims
of the SmolLM2 CPU example's README (results/reference/cpu/smollm2-135m/README.md) checked against the
intervals of the figures they cite: a sentence that says more (or less) than its intervals allow
fails here."""
import re
from pathlib import Path

import pandas as pd
import pytest

from quantbench.report import readings, tables
from quantbench.report.readings import NOT_READ, SAME, Figure, SpeedCell, compare, speed_reading

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "results" / "reference" / "cpu" / "smollm2-135m"
REPORT = EXAMPLE / "report"


# -- compare on hand-made numbers ---------------------------------------------------------------

def test_overlapping_intervals_are_same_within_noise():
    assert compare((1.0, 0.9, 1.1), (1.15, 1.05, 1.25), smaller_is_better=True) == SAME
    assert compare((1.0, 0.1), (1.2, 0.1), smaller_is_better=True) == SAME  # touching: 1.1 against 1.1


def test_separate_intervals_name_the_side_and_whether_it_is_better():
    assert compare((1.0, 0.05), (1.2, 0.05), True, ("X", "Y")) == "X smaller (better), beyond noise"
    assert compare((1.0, 0.05), (1.2, 0.05), False, ("X", "Y")) == "X smaller (worse), beyond noise"
    assert compare((1.2, 0.05), (1.0, 0.05), True, ("X", "Y")) == "X larger (worse), beyond noise"
    assert compare((1.2, 0.05), (1.0, 0.05), False, ("X", "Y")) == "X larger (better), beyond noise"


def test_a_paired_interval_decides_over_the_overlap():
    # intervals overlap, but the paired difference excludes zero: a finding
    assert compare((1.0, 0.2), (1.1, 0.2), True, ("X", "Y"), paired=(-0.15, -0.05)) == \
        "X smaller (better), beyond noise"
    # intervals apart, but the paired difference holds zero: none
    assert compare((1.0, 0.01), (1.1, 0.01), True, paired=(-0.2, 0.01)) == SAME


def test_figure_forms_and_a_value_outside_its_interval():
    assert Figure.of((2.0, 0.5)) == Figure(2.0, 1.5, 2.5) == Figure.of((2.0, 1.5, 2.5))
    with pytest.raises(ValueError):
        Figure(3.0, 1.0, 2.0)


def test_delta_reading_is_the_quality_tables_mark():
    assert readings.delta_reading(-2.2, 2.3) == SAME
    assert readings.delta_reading(-4.7, 2.3, name="gptq") == "gptq smaller (worse), beyond noise"


def test_speed_from_a_flagged_cell_is_not_read():
    fast, slow = SpeedCell(19.1, 0.07, True), SpeedCell(17.5, 0.015, False)
    assert speed_reading(fast, slow, smaller_is_better=False) == NOT_READ
    assert speed_reading(slow, fast, smaller_is_better=False) == NOT_READ
    assert speed_reading(SpeedCell(19.1, 0.01, False), slow, False, ("A", "F")) == "A larger (better), beyond noise"
    assert speed_reading(SpeedCell(17.6, 0.01, False), slow, False) == SAME


def test_speed_cell_takes_the_flag_of_the_benchmark_table():
    bench = pd.DataFrame([
        {"variant": v, "scenario": "generate", "mode": "eager", "batch_size": 1, "use_cache": True, "new_tokens": n,
         "outcome": "ok", "decode_tokens_per_s": t, "iqr_over_median": s, "spread_above_limit": flag}
        for v, n, t, s, flag in [("a", 32, 19.0, 0.07, True), ("a", 8, 30.0, 0.01, False),
                                 ("b", 32, 17.5, 0.02, None), ("c", 32, 10.0, 0.09, None)]])
    assert tables.speed_cell(bench, "a", "generate", 1, "decode_tokens_per_s") == SpeedCell(19.0, 0.07, True)
    assert tables.speed_cell(bench, "b", "generate", 1, "decode_tokens_per_s").above_limit is False
    # a record from before the flag: above SPREAD_LIMIT counts as flagged
    assert tables.speed_cell(bench, "c", "generate", 1, "decode_tokens_per_s").above_limit is True


# -- the example README's comparative claims against the committed report -------------------------------

# (what is compared, variant A, variant B, A's and B's names as the README writes them, the README
# passage that carries the reading); the reading is computed from the CSVs and must be in the passage
CLAIMS = [
    ("kl", "gptq-4bit-g64-act", "gptq-4bit-g64", "act-order", "GPTQ 4-bit",
     "(0.2337 ± 0.0068 against 0.2475 ± 0.0069: act-order smaller (better), beyond noise"),
    ("kl", "gguf-q8_0", "torchao-int8wo", "Q8_0", "torchao int8 weight-only",
     "(0.0055 ± 0.0001 against 0.0047 ± 0.0001: Q8_0 larger (worse), beyond noise)"),
    ("kl", "gguf-q4_0", "bnb-nf4", "Q4_0", "NF4",
     "(KL 0.384 ± 0.008 against 0.358 ± 0.007: Q4_0 larger (worse), beyond noise)"),
    ("kl", "hqq-4bit-g64", "gptq-4bit-g64", "HQQ 4-bit", "GPTQ 4-bit",
     "(KL 0.277 ± 0.006 against 0.248 ± 0.007: HQQ 4-bit larger (worse), beyond noise)"),
    ("decode", "awq-4bit-g64", "fp32", "AWQ", "float32",
     "(AWQ against float32: not\nread: spread above the limit)"),
    ("decode", "gguf-q8_0", "gguf-f32", "Q8_0", "F32", "Q8_0 56.4 (a figure only: against the others,\n"
     "not read: spread above the limit)"),
    ("decode", "bnb-nf4+lora+merge-fp", "fp32", "merge-fp", "float32",
     "merge-fp and merge-dequant against float32,\nsame within noise"),
    ("decode", "bnb-nf4+lora+merge-dequant", "fp32", "merge-dequant", "float32",
     "merge-fp and merge-dequant against float32,\nsame within noise"),
]
# readings the README states without the words: "same model", "about as much as", "slower beyond
# their spread", "not read"
PLAIN = [
    ("kl", "bnb-nf4", "bnb-nf4-nodq", SAME, "are the\nsame model (KL 0.3577 against 0.3575"),
    ("kl", "awq-4bit-g64", "gptq-4bit-g64", "A smaller (better), beyond noise",
     "less than GPTQ 4-bit at about the same size (KL 0.19 against 0.25"),
    ("kl", "gguf-q8_0", "bnb-int8", "A smaller (better), beyond noise", "5x less than bnb int8"),
    *[("decode", v, "fp32", "A smaller (worse), beyond noise", "The others are slower beyond their spread")
      for v in ("torchao-int8wo", "bnb-nf4", "bnb-nf4-nodq", "bnb-fp4", "bnb-int8", "gptq-8bit-g64",
                "gptq-4bit-g64", "gptq-4bit-g64-act", "gptq-3bit-g64")],
    *[("decode", v, "fp32", NOT_READ, "come from cells above the limit (not read: spread above the limit)")
      for v in ("hqq-4bit-g64", "hqq-2bit-g32")],
    ("decode", "gptq-2bit-g64", "fp32", NOT_READ, "its 2-bit cell, 4.2, is above the spread limit and not read"),
    ("decode", "fp32+lora", "fp32", "A smaller (worse), beyond noise", "an unmerged LoRA adapter decodes 27% slower"),
]


@pytest.fixture(scope="module")
def report():
    return (pd.read_csv(REPORT / "quality.csv").set_index("variant"), pd.read_csv(REPORT / "benchmark.csv"))


@pytest.fixture(scope="module")
def readme():
    return (EXAMPLE / "README.md").read_text()


def _reading(report, what, a, b, names=("A", "B")):
    quality, bench = report
    if what == "kl":  # nats per token, 95% half-width over the held-out windows; smaller is closer
        return compare((quality.kl_mean[a], quality.kl_mean_ci95[a]), (quality.kl_mean[b], quality.kl_mean_ci95[b]),
                       smaller_is_better=True, names=names)
    # as the report reads speed: each cell's noise at least the spread between jobs of one computation
    floor, _ = tables.job_spread(bench, "fp32")
    cells = [tables.speed_cell(bench, v, "generate", 1, "decode_tokens_per_s", floor=floor) for v in (a, b)]
    return speed_reading(*cells, smaller_is_better=False, names=names)


def _norm(text):
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize("what,a,b,name_a,name_b,passage", CLAIMS, ids=[f"{c[1]}~{c[2]}:{c[0]}" for c in CLAIMS])
def test_readme_reading_matches_its_intervals(report, readme, what, a, b, name_a, name_b, passage):
    words = _reading(report, what, a, b, (name_a, name_b))
    assert _norm(passage) in _norm(readme), f"the README no longer has {passage!r}"
    assert _norm(words) in _norm(passage), f"README says {passage!r}; the intervals say {words!r}"


@pytest.mark.parametrize("what,a,b,words,passage", PLAIN, ids=[f"{c[1]}~{c[2]}:{c[0]}" for c in PLAIN])
def test_readme_plain_reading_matches_its_intervals(report, readme, what, a, b, words, passage):
    assert _norm(passage) in _norm(readme), f"the README no longer has {passage!r}"
    assert _reading(report, what, a, b) == words


def test_the_issues_examples_read_as_the_issue_says(report):
    """Issue 21's figures: AWQ's decode cell is flagged. (Its act-order example, intervals
    0.2274–0.2412 against 0.2407–0.2555, is gone: both GPTQ rows were quantized again, and the
    README's reading of the new pair is checked with the other CLAIMS.)"""
    assert _reading(report, "decode", "awq-4bit-g64", "fp32") == NOT_READ


def test_the_reports_speed_readings_leave_flagged_cells_unread(report):
    from quantbench.report import markdown

    _, bench = report
    floor, _ = tables.job_spread(bench, "fp32")  # as the report's section reads them
    table = markdown.speed_readings(bench, "fp32", floor).set_index("variant")["against fp32"]
    assert table["awq-4bit-g64"] == NOT_READ and table["hqq-4bit-g64"] == NOT_READ
    assert table["bnb-nf4+lora+merge-fp"] == SAME
    assert table["gguf-q4_0"] == "gguf-q4_0 larger (better), beyond noise"
    assert "fp32" not in table
    assert markdown.speed_readings_section(bench, None) == []


def test_jobs_of_one_computation_set_the_floor_of_speed_noise():
    """The toy's fp32 and its two merges (the same float32 computation, three jobs) decode at 330, 354
    and 303 tokens/s, each with a tight spread of its own: read against each other they are the same
    within noise, because their spread between jobs is the floor of every cell's noise."""
    from quantbench.report.markdown import speed_readings
    from quantbench.report.tables import job_spread

    cells = [("fp32", "torch-float32", 330.0), ("m+lora+merge-fp", "torch-float32", 354.0),
             ("m+lora+merge-dequant", "torch-float32", 303.0), ("m+lora", "torch-float32", 200.0),
             ("q", "other", 150.0)]
    bench = pd.DataFrame([{"variant": v, "kernel": k, "scenario": "generate", "mode": "eager", "batch_size": 1,
                           "use_cache": True, "new_tokens": 32, "outcome": "ok", "decode_tokens_per_s": t,
                           "iqr_over_median": 0.01, "spread_above_limit": False} for v, k, t in cells])
    floor, twins = job_spread(bench, "fp32")
    assert twins == ["fp32", "m+lora+merge-fp", "m+lora+merge-dequant"]  # an unmerged adapter is not a twin
    assert floor == pytest.approx((354 - 303) / 330)
    table = speed_readings(bench, "fp32", floor).set_index("variant")["against fp32"]
    assert table["m+lora+merge-dequant"] == SAME and table["m+lora+merge-fp"] == SAME
    assert table["q"].endswith("beyond noise") and table["m+lora"].endswith("beyond noise")


def test_a_paired_interval_ending_on_zero_is_called_so():
    """An interval with one end on zero holds zero, only just: the reading says so, and the table's
    within_noise stays True; one holding zero inside, or all of it zero (identical answers), is a plain tie."""
    edge = compare((-4.4, -9.4, 0.0), (0.0, 0.0, 0.0), smaller_is_better=False, paired=(-9.4, 0.0))
    assert edge == readings.AT_EDGE and readings.is_same(edge)
    assert compare((2.0, 0.0, 5.0), (0.0, 0.0, 0.0), smaller_is_better=False, paired=(0.0, 5.0)) == readings.AT_EDGE
    assert compare((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), smaller_is_better=False, paired=(0.0, 0.0)) == SAME
    assert compare((-1.0, -2.0, 0.5), (0.0, 0.0, 0.0), smaller_is_better=False, paired=(-2.0, 0.5)) == SAME
