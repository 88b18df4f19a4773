"""Calibration replicates in the report: a calibrated method (GPTQ, AWQ) quantized from N calibration
draws (`replicates: N`; the variants `<method>~r<k>`, quantbench.calibration_draw) is one row of the
quality table, with the spread between its runs and an interval that holds it.

The single-run paired interval (paired.py) covers the sampling of items for one fixed model. Which
model a method gives depends on its calibration draw, so a reading about the method ("GPTQ 4-bit loses
beyond the noise") must also hold for the model the next draw gives. The run-inclusive interval is a
two-stage bootstrap over runs and items together: each resample draws one of the N runs (runs with
replacement) and then the items with replacement (within each task, the same items for the run and
the baseline: paired), and takes that run's mean difference to the baseline over the drawn items. Its
95% percentile interval is the interval of the difference one quantization from a fresh draw shows:
the item noise of a single run plus the spread between runs. With N = 1 it is the single-run paired
interval exactly (the same item draws); with N > 1 it is, as a rule, at least as wide, as the draws add
their own spread. Its point is the mean of the N runs' differences.

Holm's correction counts such a method once: its test is this bootstrap's two-sided p-value (the
share of resamples on the far side of zero, doubled), in place of McNemar's test of one run's flips;
the replicates' own rows are not tests of the family (they are the same method).
"""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from quantbench.calibration_draw import split_name
from quantbench.report import paired

KIND = "paired, runs included"  # delta_noise_kind of a method row whose interval holds its runs' spread
# the figures whose spread over the runs a method's row carries (sd, min, max)
SPREAD_OF = ("kl_mean", "top1_agreement", "perplexity_ratio", "delta_average_points")


def runs_of(variants) -> dict[str, list[str]]:
    """method -> its runs (the method itself first, then `<method>~r<k>` by k), for each method with at
    least one replicate among `variants`."""
    names = list(dict.fromkeys(variants))
    out: dict[str, list[tuple[int, str]]] = {}
    for v in names:
        method, k = split_name(v)
        if k > 1 and method in names:
            out.setdefault(method, [(1, method)]).append((k, v))
    return {m: [v for _, v in sorted(runs)] for m, runs in out.items()}


def is_replicate(variant: str) -> bool:
    return split_name(variant)[1] > 1


def run_inclusive_bootstrap(per_run: list[dict[str, tuple]], resamples: int = paired.RESAMPLES,
                            seed: int = paired.SEED) -> dict:
    """The difference (points) of a method's runs to the baseline, resampling runs and items together.

    per_run: one mapping per run, task name -> (a, b): the run's and the baseline's 0/1 outcomes over
    the same items (every run scores the same items). Returns delta (the mean of the runs'
    differences), low and high (95% percentile interval), p (two-sided bootstrap p-value of no
    difference) and runs."""
    if not per_run:
        raise ValueError("no runs")
    tasks = list(per_run[0])
    if any(list(r) != tasks for r in per_run):
        raise ValueError("every run must score the same tasks")
    diffs = [{t: np.asarray(a, dtype=float) - np.asarray(b, dtype=float) for t, (a, b) in r.items()} for r in per_run]
    point = 100 * float(np.mean([np.mean([d[t].mean() for t in tasks]) for d in diffs]))
    # which run each resample takes; the items follow paired_bootstrap's draws, so that one run gives its interval
    pick = np.random.default_rng([seed, zlib.crc32(b"runs")]).integers(0, len(diffs), size=resamples)
    boot = np.zeros(resamples)
    for task in tasks:
        n = len(diffs[0][task])
        if any(len(d[task]) != n for d in diffs):
            raise ValueError(f"{task}: the runs hold different numbers of items")
        rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
        idx = rng.integers(0, n, size=(resamples, n))
        means = np.stack([d[task][idx].mean(axis=1) for d in diffs])  # runs x resamples
        boot += means[pick, np.arange(resamples)]
    boot *= 100 / len(tasks)
    low, high = np.percentile(boot, [2.5, 97.5])
    below, above = int((boot <= 0).sum()), int((boot >= 0).sum())
    p = min(1.0, 2 * (min(below, above) + 1) / (resamples + 1))
    # the percentile interval of a mixture need not hold the runs' mean; it is widened to hold it
    return {"delta": point, "low": float(min(low, point)), "high": float(max(high, point)), "p": p,
            "runs": len(per_run)}


def compare_runs(runs: list[dict], base: dict, tasks: list[str], resamples: int = paired.RESAMPLES,
                 seed: int = paired.SEED) -> dict | None:
    """run_inclusive_bootstrap of per-item files (one per run) against the baseline's, or None where any
    lacks a task."""
    if not tasks or any(t not in x["tasks"] for x in [*runs, base] for t in tasks):
        return None
    return run_inclusive_bootstrap([{t: paired._aligned(r, base, t) for t in tasks} for r in runs], resamples, seed)


def spread(quality: pd.DataFrame, runs: list[str]) -> dict:
    """Between-run spread of a method's figures: `<figure>_runs_sd` (sample sd), `_runs_min`, `_runs_max`."""
    rows = quality.set_index("variant").reindex(runs)
    out = {"runs": len(runs)}
    for col in SPREAD_OF:
        if col not in rows or rows[col].isna().all():
            continue
        x = rows[col].astype(float)
        out[f"{col}_runs_sd"] = float(x.std(ddof=1)) if x.notna().sum() > 1 else float("nan")
        out[f"{col}_runs_min"], out[f"{col}_runs_max"] = float(x.min()), float(x.max())
    return out


def kl_half_width(quality: pd.DataFrame, runs: list[str]) -> float | None:
    """A run-inclusive 95% half-width of a method's KL: its first run's interval over held-out windows and
    the spread between runs (1.96 sd) added in quadrature; None without both."""
    rows = quality.set_index("variant").reindex(runs)
    if "kl_mean_ci95" not in rows or pd.isna(rows.kl_mean_ci95.iloc[0]) or rows.kl_mean.notna().sum() < 2:
        return None
    return float((rows.kl_mean_ci95.iloc[0] ** 2 + (1.959964 * rows.kl_mean.std(ddof=1)) ** 2) ** 0.5)


def replicate_table(quality: pd.DataFrame, records: list[dict]) -> pd.DataFrame:
    """The per-run figures of every method with replicates (its own small table): each run's calibration
    draw (replicate, seed, texts hash, from its quantize record), task average and its single-run paired
    interval, KL, top-1 agreement and perplexity ratio. `quality`: the table before its replicate rows
    were folded (tables.quality_table(..., fold_replicates=False))."""
    if quality.empty:
        return pd.DataFrame()
    groups = runs_of(quality.variant)
    draws = {r["subject"]: r.get("calibration_draw") or {} for r in records if r["stage"] == "quantize"}
    rows = []
    q = quality.set_index("variant")
    for method, runs in groups.items():
        for v in runs:
            d, r = draws.get(v, {}), q.loc[v]
            rows.append({"method": method, "variant": v, "replicate": split_name(v)[1],
                         "calibration_seed": d.get("seed"), "calibration_texts_sha256": d.get("texts_sha256"),
                         **{c: r.get(c) for c in ("Average", "delta_average_points", "delta_ci95_low",
                                                  "delta_ci95_high", "kl_mean", "kl_mean_ci95", "top1_agreement",
                                                  "perplexity_ratio")}})
    return pd.DataFrame(rows)
