"""Every task in the shipped suites resolves in lm-eval's registry offline, with the metric we read."""
import pytest
from lm_eval.tasks import TaskManager

from quantbench.suites import SUITES, local_task_yaml, suite


@pytest.fixture(scope="module")
def registry():
    return TaskManager()


def _metrics(entry) -> set[str]:
    cfg = entry.cfg
    names = {m["metric"] for m in cfg.get("metric_list", []) + cfg.get("aggregate_metric_list", [])}
    filters = {f["name"] for f in cfg.get("filter_list", [])} or {"none"}
    return {f"{m},{f}" for m in names for f in filters}


@pytest.mark.parametrize("entry", [e for es in SUITES.values() for e in es if not e.get("local")],
                         ids=lambda e: e["task"])
def test_task_resolves_with_its_leaderboard_metric(registry, entry):
    found = registry._entry(entry["task"])
    assert found is not None, f"{entry['task']} is not in lm-eval's registry"
    metrics = _metrics(found)
    if not metrics:  # a group without an aggregate: its subtasks must report the metric
        subtasks = [registry._entry(t) for t in found.cfg["task"] if isinstance(t, str)]
        metrics = set().union(*(_metrics(s) for s in subtasks if s is not None))
    assert entry["metric"] in metrics, f"{entry['task']} reports {sorted(metrics)}"


def test_toy_tasks_load_from_local_files(tmp_path):
    from quantbench.toy.data import build

    data = tmp_path / "data"
    build(data, seed=1)
    for e in suite("toy"):
        (tmp_path / f"{e['task']}.yaml").write_text(local_task_yaml(e, str(data)))
    tm = TaskManager(include_path=str(tmp_path))
    tasks = tm.load_task_or_group([e["task"] for e in suite("toy")])
    assert set(tasks) == {e["task"] for e in suite("toy")}
    capitals = tasks["toy_capitals"]
    assert len(list(capitals.test_docs())) > 20


def test_unknown_suite_names_the_allowed_ones():
    with pytest.raises(ValueError, match="allowed: leaderboard-v1"):
        suite("leaderboard-v3")


def _dataset_paths(registry, name: str) -> set[str]:
    """dataset_path of a task, or of every task under a group or tag."""
    entry = registry._entry(name)
    cfg = (entry.cfg if entry is not None else None) or {}
    if not cfg.get("dataset_path") and not cfg.get("task"):  # a tag: the tasks that carry it
        members = [n for n, e in registry.task_index.items() if name in (e.tags or ()) and n != name]
        return set().union(*(_dataset_paths(registry, m) for m in members))
    if cfg.get("dataset_path"):
        return {cfg["dataset_path"]}
    subtasks = [t for t in cfg.get("task", []) if isinstance(t, str)] if isinstance(cfg.get("task"), list) else []
    return set().union(*(_dataset_paths(registry, t) for t in subtasks))


@pytest.mark.parametrize("entry", [e for es in SUITES.values() for e in es if not e.get("local")],
                         ids=lambda e: e["task"])
def test_dataset_offline_validation_looks_for_is_the_one_lm_eval_reads(registry, entry):
    assert _dataset_paths(registry, entry["task"]) == {entry["dataset"]}
