"""The same variants evaluated on two devices (or two machines): each quality figure beside its
counterpart, the difference, and whether the difference is inside the noise.

The noise of a difference treats the two runs as independent estimates (root sum of squares of the
two 95% half-widths; a task's from its two standard errors). Both runs score the same items and
tokens, so a paired interval would be narrower: a difference called beyond the noise here is beyond
it paired too, while one called inside might not be.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from quantbench.atomic import read_json

Z95 = 1.959964


def evaluate_records(folder: str | Path) -> dict[str, dict]:
    """A results folder's evaluation records that hold numbers, by variant."""
    found = {}
    for path in sorted(Path(folder, "records", "evaluate").glob("*.json")):
        record = read_json(path)
        if record.get("status") == "ok":
            found[record["subject"]] = record
    return found


def _half_width(metrics: dict, name: str) -> float | None:
    """A metric's 95% half-width as the record keeps it (a number, or an interval [low, high])."""
    ci = metrics.get(f"{name}_ci95")
    if ci is None:
        return None
    if isinstance(ci, (list, tuple)):
        return (ci[1] - ci[0]) / 2
    return float(ci)


def _figures(record: dict) -> dict[str, tuple[float, float | None]]:
    """Each comparable figure of one record: (value, 95% half-width)."""
    m = record["metrics"]
    out = {}
    for name in ("kl_mean", "top1_agreement", "perplexity_ratio"):
        if m.get(name) is not None:
            out[name] = (float(m[name]), _half_width(m, name))
    for task, score in (m.get("tasks") or {}).items():
        stderr = (m.get("tasks_stderr") or {}).get(task)
        out[f"task:{task}"] = (float(score), None if stderr is None else Z95 * float(stderr))
    return out


def comparison(first: str | Path, second: str | Path) -> pd.DataFrame:
    """One row per variant and figure present in both folders."""
    a, b = evaluate_records(first), evaluate_records(second)
    rows = []
    for variant in sorted(set(a) & set(b)):
        fa, fb = _figures(a[variant]), _figures(b[variant])
        for name in [n for n in fa if n in fb]:
            (va, ha), (vb, hb) = fa[name], fb[name]
            noise = math.hypot(ha, hb) if ha is not None and hb is not None else None
            diff = vb - va
            rows.append({
                "variant": variant, "figure": name, "first": va, "second": vb, "difference": diff,
                "noise_95": noise,
                "within_noise": None if noise is None else abs(diff) <= noise,
                "first_kernel": a[variant].get("kernel"), "second_kernel": b[variant].get("kernel"),
            })
    return pd.DataFrame(rows)


def beyond_noise(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["within_noise"] == False]  # noqa: E712 (None means: no interval to judge by)


def markdown(table: pd.DataFrame, first_name: str, second_name: str) -> str:
    """The comparison as a Markdown table; differences beyond the noise in bold."""
    head = (f"| variant | figure | {first_name} | {second_name} | difference | noise (95%) | verdict |\n"
            "|---|---|---:|---:|---:|---:|---|\n")
    lines = []
    for r in table.itertuples():
        noise = "n/a" if r.noise_95 is None or pd.isna(r.noise_95) else f"{r.noise_95:.4g}"
        if r.within_noise is None or pd.isna(r.within_noise):
            verdict = "no interval"
        else:
            verdict = "inside the noise" if r.within_noise else "**beyond the noise**"
        lines.append(f"| {r.variant} | {r.figure} | {r.first:.4g} | {r.second:.4g} | {r.difference:+.4g} | "
                     f"{noise} | {verdict} |")
    return head + "\n".join(lines) + "\n"
