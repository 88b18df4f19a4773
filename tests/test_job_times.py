"""tools/job_times.py reads a run's per-job wall times from Snakemake's metadata: one row per job (not
per output), counted against the records the toy DAG wrote."""
from __future__ import annotations

import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import job_times  # noqa: E402


def test_one_row_per_job_of_the_toy_dag(toy_run):
    jobs = job_times.job_times(toy_run)
    records = toy_run / "results/toy-llama/records"
    counts = jobs.rule.value_counts()
    for rule in ("evaluate", "benchmark", "sensitivity", "finetune"):
        assert counts[rule] == len(list((records / rule).glob("*.json"))), rule
    assert (jobs.job_wall_s >= 0).all() and jobs.output.is_unique
    rules = job_times.per_rule(jobs)
    assert abs(rules.job_s_sum.sum() - jobs.job_wall_s.sum()) <= 0.05 * len(rules)  # each sum rounded to 0.1 s
    assert (rules.span_s <= jobs.end_unix_s.max() - jobs.start_unix_s.min() + 1e-6).all()
