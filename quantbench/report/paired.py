"""Paired comparisons of task accuracy: the same items scored by a variant and by the baseline.

Two variants answer the same items, so their accuracies are not independent samples: the unpaired
noise (a difference of two independent means) overstates the noise of their difference when the
two mostly agree, which quantized models of one base do. Here the difference is bootstrapped over
items (each resample draws the same items for both), and the flips are counted: items the variant
gets wrong that the baseline got right and the other way round. A small accuracy change can hide
many flips both ways; Dutta et al., "Accuracy is Not All You Need" (arXiv 2407.09141), make that case
for compressed LLMs and propose flips as a measure beside accuracy.

The per-item file (`lm_eval/<variant>.items.json`, written by the evaluate stage from lm-eval's
`log_samples`) holds, per task, the doc ids and 0/1 correctness of the suite's metric.
"""
from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from quantbench.atomic import read_json, write_json

FORMAT = 1
RESAMPLES = 2000
SEED = 0


def items_from_samples(samples: dict, entries: list[dict]) -> dict:
    """The compact per-item file from lm-eval's logged samples: for each suite entry scored by a
    metric (`acc,none`), the doc ids and whether each was right (1) or wrong (0). Entries whose task
    logged no samples (a group's aggregate) are left out."""
    tasks = {}
    for e in entries:
        if not e.get("higher_is_better", True):
            continue
        name, _, filt = e["metric"].partition(",")
        logged = [s for s in samples.get(e["task"], []) if s.get("filter", "none") == (filt or "none")]
        if not logged:
            continue
        logged.sort(key=lambda s: s["doc_id"])
        tasks[e["task"]] = {"metric": e["metric"], "doc_ids": [int(s["doc_id"]) for s in logged],
                            "correct": [int(float(s[name]) > 0.5) for s in logged]}
    return {"format": FORMAT, "tasks": tasks}


def items_path(lm_eval_json: str | Path) -> Path:
    """`lm_eval/<variant>.json` -> `lm_eval/<variant>.items.json`."""
    p = Path(lm_eval_json)
    return p.with_name(p.name.removesuffix(".json") + ".items.json")


def write_items(lm_eval_json: str | Path, items: dict) -> Path:
    path = items_path(lm_eval_json)
    write_json(path, items)  # atomic: a killed job leaves no half file
    return path


def items_beside(record_paths: list[str | Path], records: list[dict]) -> dict[str, dict]:
    """The per-item files of the evaluate records, where they exist: a record at
    `<results>/records/evaluate/<v>.json` has its items at `<results>/lm_eval/<v>.items.json`."""
    out = {}
    for path, r in zip(record_paths, records):
        if r.get("stage") != "evaluate":
            continue
        items = Path(path).resolve().parents[2] / "lm_eval" / f"{r['subject']}.items.json"
        if items.exists():
            data = read_json(items)
            if data.get("format") == FORMAT:
                out[r["subject"]] = data
    return out


def _aligned(a: dict, b: dict, task: str) -> tuple[np.ndarray, np.ndarray]:
    ta, tb = a["tasks"][task], b["tasks"][task]
    if ta["doc_ids"] != tb["doc_ids"]:
        raise ValueError(f"{task}: the two per-item files hold different items")
    return np.asarray(ta["correct"], dtype=float), np.asarray(tb["correct"], dtype=float)


def flips(a, b) -> dict:
    """Items right in the baseline `b` and wrong in `a` (right_to_wrong), and the other way round."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    return {"right_to_wrong": int((b & ~a).sum()), "wrong_to_right": int((~b & a).sum())}


def paired_bootstrap(per_task: dict[str, tuple], resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """The difference of the mean over tasks of accuracy, a minus b, in points, with its 95%
    percentile interval from `resamples` paired resamples of items (drawn within each task, the same
    draw for both sides); per_task: task name -> (a, b), 0/1 arrays over the same items.

    Each task's items are drawn from a generator seeded by the seed and the task's name, not from one
    stream shared in turn: the interval of one comparison is then the same whichever order its caller
    lists the tasks in (the scoreboard takes the suite's order, the recipe figure sorted names), so one
    computation prints one interval."""
    if not isinstance(per_task, Mapping):
        raise TypeError("per_task: a mapping task name -> (a, b), so that each task's draw follows its name")
    diffs = {t: np.asarray(a, dtype=float) - np.asarray(b, dtype=float) for t, (a, b) in per_task.items()}
    point = 100 * float(np.mean([d.mean() for d in diffs.values()]))
    boot = np.zeros(resamples)
    for task, d in diffs.items():
        rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
        idx = rng.integers(0, len(d), size=(resamples, len(d)))
        boot += d[idx].mean(axis=1)
    boot *= 100 / len(diffs)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"delta": point, "low": float(low), "high": float(high)}


def unpaired_half_width(per_task: dict[str, tuple]) -> float:
    """Today's noise for the same data: 95% half-width of a difference of two independent means (each
    task's binomial standard error, the Average's combined over tasks), in points."""
    var = 0.0
    for a, b in per_task.values():
        for x in (np.asarray(a, dtype=float), np.asarray(b, dtype=float)):
            var += x.var(ddof=1) / len(x)
    return 100 * 1.959964 * var ** 0.5 / len(per_task)


def compare_items(a: dict, b: dict, tasks: list[str], resamples: int = RESAMPLES, seed: int = SEED) -> dict | None:
    """Paired delta of variant `a` against baseline `b` over `tasks`, or None where either lacks a task."""
    if not tasks or any(t not in a["tasks"] or t not in b["tasks"] for t in tasks):
        return None
    per_task = {t: _aligned(a, b, t) for t in tasks}
    out = paired_bootstrap(per_task, resamples, seed)
    f = [flips(x, y) for x, y in per_task.values()]
    out["right_to_wrong"] = sum(x["right_to_wrong"] for x in f)
    out["wrong_to_right"] = sum(x["wrong_to_right"] for x in f)
    out["items"] = sum(len(x) for x, _ in per_task.values())
    return out
