"""A 7B-shaped GPU setup submitted through profiles/slurm to a real Slurm whose node advertises two
GPUs (GRES backed by placeholder files: this machine has none), from a submit host without a GPU.
What each job asked for is read back from Slurm itself (scontrol). The GPU jobs then fail on the
node, which has no GPU, with gpu_slot's one-line message: the requests are what this checks."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, copy_project, slurm_cluster

SLURM = ROOT / "tests" / "slurm"
NAME = "llama2-7b-random"
# The node: more CPUs and memory than this machine has (config_overrides), so that a 7B model's
# requests fit; two GPUs.
NODE = {"QB_SLURM_GPUS": "2", "QB_SLURM_CPUS": "16", "QB_SLURM_MEM_MB": "256000"}


@pytest.fixture(scope="module")
def gpu_cluster():
    for env in slurm_cluster(NODE):
        # the submit host shows no GPU, and nothing here hides that
        yield {k: v for k, v in env.items() if k not in NODE and k != "QUANTBENCH_ASSUME_CUDA"}


def fake_outputs(project: Path, names: list[str]) -> None:
    """Finished upstream outputs (made after the project's files, so newer): Snakemake then submits
    the stage under test at once instead of building a 7B model first."""
    r = project / "results" / NAME
    for folder in ["models/base"] + [f"models/{n}" for n in names]:
        (r / folder).mkdir(parents=True, exist_ok=True)
        (r / folder / "config.json").write_text("{}")
    for record in ["records/build/base.json"] + [f"records/quantize/{n}.json" for n in names]:
        (r / record).parent.mkdir(parents=True, exist_ok=True)
        (r / record).write_text("{}")


def slurm_jobs(project: Path, env: dict) -> list[dict]:
    """Every job this project submitted (one SLURM log each), as scontrol shows it."""
    ids = sorted({int(p.stem) for p in (project / ".snakemake" / "slurm_logs").rglob("*.log") if p.stem.isdigit()})
    jobs = []
    for job_id in ids:
        out = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True,
                             env=env, timeout=30).stdout
        fields = dict(re.findall(r"(\S+?)=(\S*)", out))
        # the plugin's comment: rule_<name>[_wildcards_<values>]
        fields["rule"] = re.match(r"rule_(.+?)(?:_wildcards_.*)?$", fields.get("Comment", "rule_?"))[1]
        jobs.append(fields)
    return jobs


def minutes(limit: str) -> int:
    days, _, hms = limit.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (s > 0)


def test_a_7b_gpu_setup_asks_slurm_for_what_each_job_needs(gpu_cluster, tmp_path):
    project = copy_project(tmp_path / "project")
    config = yaml.safe_load((ROOT / "config" / "llama2-7b.yaml").read_text())
    config["model"].pop("num_hidden_layers", None)  # full depth: 6.7 B parameters in float16
    config["model"]["name"] = NAME
    (project / "setup.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # no retry of the failures (shorter status-check waits made plugin 2.6.1 slower: NOTES.md)
    snakemake = [sys.executable, "-m", "snakemake", "--workflow-profile", "profiles/slurm", "--retries", "0"]

    def submit(*targets):
        return subprocess.run(snakemake + list(targets) + ["--configfile", "setup.yaml"], cwd=project,
                              env=gpu_cluster, capture_output=True, text=True, timeout=900)

    data = submit(f"results/{NAME}/data")  # a job with no model: it runs, and needs no GPU
    assert data.returncode == 0, data.stdout[-3000:] + data.stderr[-3000:]
    fake_outputs(project, ["fp16", "bnb-nf4"])
    models = submit(f"results/{NAME}/records/quantize/gptq-4bit-g128-exllamav2.json",
                    f"results/{NAME}/records/benchmark/fp16.json", f"results/{NAME}/records/finetune/bnb-nf4.json")
    log = models.stdout + models.stderr
    # the submit host plans without a GPU, and says where the check happens instead
    assert "allowed here: cpu" not in log and "each job checks for one on its node" in log, log[-3000:]
    assert models.returncode != 0, log[-3000:]  # ... and the node has none to run them on

    jobs = {j["rule"]: j for j in slurm_jobs(project, gpu_cluster)}
    assert set(jobs) == {"build_corpus", "quantize", "benchmark", "finetune"}, jobs.keys()
    for rule in ("quantize", "benchmark", "finetune"):
        job = jobs[rule]
        assert "gpu:1" in job.get("TresPerJob", ""), (rule, job.get("TresPerJob"))
        # at most the per-job bound, never the config's max_threads: 1024
        assert int(job["CPUs/Task"]) <= 8, (rule, job["CPUs/Task"])
        # 6.7 B parameters in float16 are 13.5 GB before anything else is loaded
        assert int(job["MinMemoryNode"].rstrip("M")) >= 20000, (rule, job["MinMemoryNode"])
        # the benchmark's limit follows its grid (eager cells at batch 1 for the long generations)
        assert minutes(job["TimeLimit"]) >= (30 if rule == "benchmark" else 60), (rule, job["TimeLimit"])
    assert "TresPerJob" not in jobs["build_corpus"] or "gpu" not in jobs["build_corpus"]["TresPerJob"]
    assert int(jobs["build_corpus"]["MinMemoryNode"].rstrip("M")) <= 4000
    # GPTQ calibrates a 7B model layer by layer: hours, not the hour the profile used to give every job
    assert minutes(jobs["quantize"]["TimeLimit"]) >= 120
    # a benchmark has the node to itself; nothing else does
    assert jobs["benchmark"]["OverSubscribe"] == "NO"
    assert all(jobs[r]["OverSubscribe"] == "OK" for r in ("build_corpus", "quantize", "finetune"))
    # what the node said about the GPU jobs: no GPU there, in one line
    texts = "".join(p.read_text() for p in (project / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert "gpu_slot: this job loads a model on CUDA (device: cuda) but node" in texts, texts[-3000:]
    # what was asked, for docs/running.md's table
    (project / "requests.json").write_text(json.dumps(jobs, indent=1))
