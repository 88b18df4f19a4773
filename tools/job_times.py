"""Per-job and per-rule wall time of a workflow run, from Snakemake's own metadata
(.snakemake/metadata: one JSON per output, with the rule and the job's start and end).

    python tools/job_times.py RUN_DIR [--csv jobs.csv]     # prints the time summed per rule

A job with several outputs is counted once. A job's time includes any wait inside it (a GPU slot).
"""
from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import pandas as pd


def output_of(name: Path) -> str:
    """The output path a metadata file stands for. Snakemake names it by the path's URL-safe base64
    (`~` in a replicate's name encodes to `-`, which plain base64 refuses) and splits a name longer than
    the file system allows into folders, each but the last prefixed with `@`."""
    return base64.urlsafe_b64decode("".join(part.removeprefix("@") for part in name.parts)).decode()


def job_times(run_dir: str | Path) -> pd.DataFrame:
    """One row per job: its first output, rule, start and end (Unix seconds) and wall seconds."""
    rows = {}
    root = Path(run_dir) / ".snakemake" / "metadata"
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        meta = json.loads(f.read_text())
        if meta.get("incomplete") or meta.get("starttime") is None or meta.get("endtime") is None:
            continue
        output = output_of(f.relative_to(root))
        # a job's outputs share its log file (each output's start differs by microseconds)
        key = (meta["rule"], tuple(meta.get("log") or [output]))
        rows.setdefault(key, {"output": output, "rule": meta["rule"], "start_unix_s": round(meta["starttime"], 1),
                              "end_unix_s": round(meta["endtime"], 1),
                              "job_wall_s": round(meta["endtime"] - meta["starttime"], 1)})
    df = pd.DataFrame(list(rows.values()))
    return df.sort_values(["start_unix_s", "output"]).reset_index(drop=True) if len(df) else df


def per_rule(jobs: pd.DataFrame) -> pd.DataFrame:
    """Jobs and summed job seconds per rule; the span is first start to last end of that rule."""
    g = jobs.groupby("rule")
    out = pd.DataFrame({"jobs": g.size(), "job_s_sum": g.job_wall_s.sum().round(1),
                        "span_s": (g.end_unix_s.max() - g.start_unix_s.min()).round(1)})
    return out.sort_values("job_s_sum", ascending=False)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--csv", help="write the per-job table here")
    args = p.parse_args()
    jobs = job_times(args.run_dir)
    if args.csv:
        jobs.to_csv(args.csv, index=False)
    print(per_rule(jobs).to_string())
    print(f"\n{len(jobs)} jobs; first start to last end: {jobs.end_unix_s.max() - jobs.start_unix_s.min():.1f} s")
