"""The toy DAG through the SLURM profile on a real one-node SLURM cluster (tests/slurm/start.sh),
and a job that fails once under SLURM being reported, logged and resubmitted."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, copy_project
from tests.conftest import slurm_cluster as start_slurm
from tests.test_interrupt import SMALL

SLURM = ROOT / "tests" / "slurm"


@pytest.fixture(scope="module")
def slurm_cluster():
    yield from start_slurm()


def small_toy_config(dst: Path) -> Path:
    """The toy default, reduced to one method per backend, no fine-tune and no recipe: every job runs
    through Slurm, so each costs a submission and a fresh interpreter. The fine-tune, merge and
    re-quantize rules run in the local toy DAG (toy_run); the fine-tune's Slurm request is checked
    in test_slurm_requests.py. What is checked here is where the jobs ran and what they made, not
    what the model learned: the toy is test_interrupt's tiny one (2 layers of width 64, 20 training
    steps) and every job does little, so that Slurm's status checks find it finished early."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["model"]["toy"] = dict(SMALL["model"]["toy"])
    cfg["data"].update(SMALL["data"])
    cfg["methods"] = {k: cfg["methods"][k] for k in ("fp32", "bnb-nf4", "gptq-4bit-g32")}
    # fine-tune, recipes and the sensitivity stage run in the local toy DAG (test_workflow_e2e)
    del cfg["finetune"], cfg["recipes"], cfg["sensitivity"]
    cfg["benchmark"].update(prefill={"prompt_len": 8, "batch_sizes": [1]}, roofline=False,
                            generate={"prompt_len": 4, "new_tokens": [2], "batch_sizes": [1], "use_cache": [True]})
    cfg["evaluate"].update(limit=4, distribution_tokens=256, distribution_window=64)
    path = dst / "small.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(cmd: list[str], cwd: Path, env: dict, timeout: int = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def result_files(root: Path) -> set[str]:
    base = root / "results"
    return {str(p.relative_to(base)) for p in base.rglob("*")
            if p.is_file() and "/logs/" not in f"/{p.relative_to(base)}"}


def test_toy_dag_through_the_slurm_profile(slurm_cluster, tmp_path):
    snakemake = [sys.executable, "-m", "snakemake"]
    plan, cluster = copy_project(tmp_path / "plan"), copy_project(tmp_path / "slurm")
    config = small_toy_config(tmp_path)

    sub = run(snakemake + ["--workflow-profile", "profiles/slurm", "--configfile", str(config)], cluster, slurm_cluster)
    assert sub.returncode == 0, sub.stdout[-5000:] + sub.stderr[-5000:]

    # What a local run would make, from the plan of one (a dry run: the whole DAG, nothing run; a
    # local run of this DAG made the same set of files, and took minutes of CI).
    dry = run(snakemake + ["-n", "--cores", "1", "--forceall", "--configfile", str(config)], plan, dict(os.environ))
    planned = {p.removeprefix("results/") for line in re.findall(r"^\s+output: (.*)$", dry.stdout, re.M)
               for p in line.split(", ")}
    produced = result_files(cluster)
    assert planned and all((cluster / "results" / p).exists() for p in planned), \
        sorted(p for p in planned if not (cluster / "results" / p).exists())
    # nothing else: every file is a planned output or lies in a planned output folder
    assert all(f in planned or any(f.startswith(p + "/") for p in planned) for f in produced), \
        sorted(f for f in produced if f not in planned and not any(f.startswith(p + "/") for p in planned))
    # Every job ran as a SLURM job: one SLURM log per job, each naming its SLURM job id.
    table = dry.stdout[dry.stdout.index("Job stats:"):]
    table = table[:table.index("\ntotal")]
    expected = sum(int(m[2]) for m in re.finditer(r"^(\S+)\s+(\d+)$", table, re.M) if m[1] != "all")
    logs = sorted((cluster / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(logs) == expected, (len(logs), expected, [str(p) for p in logs])
    jobs = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i %T %j"], env=slurm_cluster,
                          capture_output=True, text=True).stdout
    assert jobs.count("COMPLETED") >= expected, jobs


def test_failed_job_is_reported_logged_and_retried(slurm_cluster, tmp_path):
    shutil.copytree(ROOT / "profiles", tmp_path / "profiles")
    shutil.copy(SLURM / "retry.smk", tmp_path / "Snakefile")
    cmd = [sys.executable, "-m", "snakemake", "--workflow-profile", "profiles/slurm"]
    no_retry = run(cmd + ["--retries", "0", "--forcerun", "flaky"], tmp_path, slurm_cluster, timeout=300)
    assert no_retry.returncode != 0
    out = no_retry.stdout + no_retry.stderr
    assert "Error in rule flaky" in out and "slurm_logs" in out, out[-3000:]
    failed_logs = list((tmp_path / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert any("failing on purpose" in p.read_text() for p in failed_logs)

    retried = run(cmd, tmp_path, slurm_cluster, timeout=300)  # the profile's retries: 1
    assert retried.returncode == 0, retried.stdout[-3000:] + retried.stderr[-3000:]
    assert (tmp_path / "flaky.done").read_text().strip() == "ok"
    texts = [p.read_text() for p in (tmp_path / ".snakemake" / "slurm_logs").rglob("*.log")]
    assert any("attempt 2" in t for t in texts) and any("attempt 1" in t and "failing on purpose" in t for t in texts)


def test_profile_dry_run_on_a_gpu_config_asks_for_gpus_only_on_model_jobs(slurm_cluster, tmp_path):
    env = {**slurm_cluster, "QUANTBENCH_ASSUME_CUDA": "1"}
    out = run([sys.executable, "-m", "snakemake", "-n", "--workflow-profile", str(ROOT / "profiles" / "slurm"),
               "--configfile", str(ROOT / "config" / "llama2-7b.yaml"), "--snakefile", str(ROOT / "Snakefile"),
               "--directory", str(tmp_path)], ROOT, env, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    gpus: dict[str, set[int]] = {}
    rule = None
    for line in out.stdout.splitlines():
        if line.startswith("rule "):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("resources:") and rule:
            found = [int(x) for x in re.findall(r"\bgpu=(\d+)", line)]
            gpus.setdefault(rule, set()).update(found or [0])
    assert gpus["report"] == {0} and gpus["build_corpus"] == {0}
    for model_rule in ("build_random_model", "quantize", "finetune", "benchmark"):
        assert gpus[model_rule] == {1}, (model_rule, gpus)
