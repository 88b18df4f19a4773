"""What each planned job will ask a scheduler for, read from a Snakemake dry run's output (the plan
Snakemake itself made, not a second derivation of it): one row per rule and distinct request.

    snakemake -n ... | python -m quantbench.requests_table
"""
from __future__ import annotations

import re
import sys

FIELDS = ("threads", "mem_mb", "runtime", "gpu", "gpu_model", "slurm_extra")


def jobs(dry_run: str) -> list[dict]:
    """One dict per job block of a dry run: rule, wildcards, threads and the resources line."""
    out: list[dict] = []
    for block in re.split(r"^(?=(?:local)?rule \S+:$)", dry_run, flags=re.M):
        head = re.match(r"(?:local)?rule (\S+):$", block, re.M)
        if not head or head[1] == "all":
            continue
        job = {"rule": head[1], "threads": 1}
        if m := re.search(r"^\s+wildcards: (.*)$", block, re.M):
            job["wildcards"] = m[1]
        if m := re.search(r"^\s+threads: (\d+)$", block, re.M):
            job["threads"] = int(m[1])
        if m := re.search(r"^\s+resources: (.*)$", block, re.M):
            for key, value in re.findall(r"(\w+)=([^,]+(?:, (?!\w+=)[^,]+)*)", m[1]):
                job[key] = value.strip()
        out.append(job)
    return out


def table(dry_run: str) -> str:
    """Markdown: rule, how many jobs, and what each asks for (identical requests grouped)."""
    groups: dict[tuple, int] = {}
    for job in jobs(dry_run):
        key = (job["rule"],) + tuple(str(job.get(f, "")) for f in FIELDS)
        groups[key] = groups.get(key, 0) + 1
    lines = ["| rule | jobs | threads | mem_mb | runtime (min) | gpu | gpu_model | slurm_extra |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for key, n in sorted(groups.items()):
        lines.append(f"| {key[0]} | {n} | " + " | ".join(key[1:]) + " |")
    return "\n".join(lines)


def main() -> None:
    text = sys.stdin.read()
    sys.stdout.write(text)
    if jobs(text):
        print("\nWhat each job will request (threads = CPUs; mem_mb and runtime as a scheduler reads them):")
        print(table(text))


if __name__ == "__main__":
    main()
