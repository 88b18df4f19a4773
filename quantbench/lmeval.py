"""Run an evaluation suite through lm-evaluation-harness on an already-loaded model object."""
from __future__ import annotations

import logging
import tempfile
from itertools import groupby
from pathlib import Path

from quantbench.report.paired import items_from_samples
from quantbench.suites import fewshot, local_task_yaml, suite

log = logging.getLogger(__name__)


def task_manager(entries: list[dict], data_dir: str | None, workdir: str):
    from lm_eval.tasks import TaskManager

    local = [e for e in entries if "local" in e]
    if not local:
        return TaskManager()
    if data_dir is None:
        raise ValueError("the toy suite needs its local data folder")
    for e in local:
        Path(workdir, f"{e['task']}.yaml").write_text(local_task_yaml(e, str(Path(data_dir).resolve())))
    # A suite of local tasks only skips indexing lm-eval's ~15k built-in task files (10 s a job).
    return TaskManager(include_path=workdir, include_defaults=len(local) < len(entries))


def scores(results: dict, entry: dict) -> float | None:
    """The entry's leaderboard metric; for a group without an aggregate, the mean of its subtasks."""
    task, metric = entry["task"], entry["metric"]
    if metric in results.get(task, {}):
        return float(results[task][metric])
    subs = [float(v[metric]) for k, v in results.items() if k.startswith(task + "_") and metric in v]
    return sum(subs) / len(subs) if subs else None


def stderr(results: dict, entry: dict) -> float | None:
    """lm-eval's standard error of the entry's metric (`acc,none` -> `acc_stderr,none`), if it has one."""
    name, _, filt = entry["metric"].partition(",")
    value = results.get(entry["task"], {}).get(f"{name}_stderr,{filt}")
    try:
        return float(value)
    except (TypeError, ValueError):  # lm-eval writes "N/A" where it has none
        return None


def evaluate(model, tokenizer, suite_name: str, params: dict, data_dir: str | None = None,
             runtime: str = "torch") -> tuple[dict, dict]:
    """Returns (per-task scores, lm-eval's raw results); the raw results carry `quantbench_stderr` (each
    task's standard error) and `quantbench_items` (paired.items_from_samples: 0/1 per item) for the
    caller to take out. `runtime` is the LoadedModel's: a llama.cpp model is scored by llama.cpp itself."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    entries = suite(suite_name)
    if runtime == "llama.cpp":
        from quantbench.llamacpp_lm import LlamaCppLM

        lm = LlamaCppLM(model, tokenizer, max_length=params.get("max_length"))
    else:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=params.get("batch_size", 8),
                  max_length=params.get("max_length"))
    raw: dict = {"results": {}, "configs": {}, "versions": {}, "n-samples": {}}
    samples: dict = {}
    override = params.get("num_fewshot")
    with tempfile.TemporaryDirectory() as workdir:
        tm = task_manager(entries, data_dir, workdir)
        shots_of = lambda e: fewshot(e, override)  # noqa: E731
        for shots, group in groupby(sorted(entries, key=shots_of), key=shots_of):
            names = [e["task"] for e in group]
            log.info("lm-eval: %s with %d-shot", ", ".join(names), shots)
            out = lm_eval.simple_evaluate(
                model=lm, tasks=names, num_fewshot=shots, limit=params.get("limit"),
                task_manager=tm, random_seed=params.get("seed", 0), numpy_random_seed=params.get("seed", 0),
                torch_random_seed=params.get("seed", 0), fewshot_random_seed=params.get("fewshot_seed", 1234),
                log_samples=True)  # per-item outcomes, for paired comparisons (report/paired.py)
            for key in raw:
                raw[key].update(out.get(key, {}))
            samples.update(out.get("samples") or {})
    per_task = {e["task"]: scores(raw["results"], e) for e in entries}
    raw["quantbench_stderr"] = {e["task"]: stderr(raw["results"], e) for e in entries}
    # compact: 0/1 per item of each scored task, not lm-eval's whole logged samples (prompts, responses)
    raw["quantbench_items"] = items_from_samples(samples, entries)
    return per_task, raw
