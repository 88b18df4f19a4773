"""tools/job_times.py reads a run's per-job wall times from Snakemake's metadata: one row per job (not
per output), counted against the records the toy DAG wrote."""
from __future__ import annotations

import sys
from pathlib import Path

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


def test_metadata_names_decode_as_snakemake_writes_them(tmp_path):
    """A replicate's `~` and a path longer than a file name: the SmolLM2 replicates run's metadata failed
    to decode with plain base64 (Snakemake's FilePersistence encodes URL-safe and splits long names)."""
    from snakemake.persistence.file import FilePersistence

    class Names:  # FilePersistence's naming, with a short name limit so that the path splits
        def _fetch_max_len(self, subject):
            return 40
    outputs = ["results/m/records/evaluate/gptq-4bit-g64~r2.json", "results/m/models/awq-4bit-g64~r3"]
    metadata = tmp_path / ".snakemake" / "metadata"
    for out in outputs:
        path = Path(FilePersistence._record_path(Names(), str(metadata), out))
        assert path.parent != metadata  # split into folders
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"rule": "evaluate", "starttime": 1.0, "endtime": 3.5, "log": ["%s.log"]}' % out)
    jobs = job_times.job_times(tmp_path)
    assert sorted(jobs.output) == sorted(outputs) and (jobs.job_wall_s == 2.5).all()
