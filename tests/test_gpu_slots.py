"""GPU jobs on a workstation with several GPUs: each job gets a GPU of its own from quantbench.gpu_slot
(CUDA_VISIBLE_DEVICES names two GPUs this CPU machine does not have: the slots only hand out names),
Snakemake's --resources gpu=N bounds how many run, and a benchmark runs alone."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT

# What a job does: note its GPU and when it ran, then hold the GPU a moment so that jobs overlap.
RECORDER = textwrap.dedent("""
    import json, os, sys, time
    start = time.time(); time.sleep(float(sys.argv[2]))
    json.dump({"gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start, "end": time.time()},
              open(sys.argv[1], "w"))
""")


def overlaps(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def slot_env(tmp_path: Path) -> dict:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "0,1", "QUANTBENCH_GPU_LOCKS": str(tmp_path / "locks"),
            "PYTHONPATH": str(ROOT)}


def test_three_jobs_on_two_gpus_two_at_a_time_each_on_its_own(tmp_path):
    (tmp_path / "job.py").write_text(RECORDER)
    env = slot_env(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-m", "quantbench.gpu_slot", "--", sys.executable,
                               str(tmp_path / "job.py"), str(tmp_path / f"{i}.json"), "1.5"], env=env)
             for i in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    jobs = [json.loads((tmp_path / f"{i}.json").read_text()) for i in range(3)]
    assert {j["gpu"] for j in jobs} == {"0", "1"}
    for i, a in enumerate(jobs):
        for b in jobs[i + 1:]:
            if overlaps(a, b):
                assert a["gpu"] != b["gpu"], (a, b)
    assert not all(overlaps(a, b) for i, a in enumerate(jobs) for b in jobs[i + 1:])  # the third waited


def test_a_job_that_finds_no_gpu_stops_with_one_line(tmp_path):
    env = {**slot_env(tmp_path), "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-m", "quantbench.gpu_slot", "--", "true"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == ("gpu_slot: this job loads a model on CUDA (device: cuda) but this machine "
                                  "shows no GPU (CUDA_VISIBLE_DEVICES is empty and nvidia-smi lists none)")


SNAKEFILE = """
rule all:
    input: expand("gpu/{i}.json", i=range(4)), "benchmark.json"

rule gpu_job:
    output: "gpu/{i}.json"
    resources: gpu=1
    shell: "python -m quantbench.gpu_slot -- python job.py {output} 1.5"

# as the workflow's benchmark rule with exclusive: true: every core, and a GPU
rule benchmark:
    output: "benchmark.json"
    threads: workflow.cores
    resources: gpu=1
    shell: "python -m quantbench.gpu_slot -- python job.py {output} 1.5"
"""


def test_snakemake_runs_gpu_jobs_two_at_a_time_and_a_benchmark_alone(tmp_path):
    (tmp_path / "job.py").write_text(RECORDER)
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    out = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "4", "--resources", "gpu=2"],
                         cwd=tmp_path, env=slot_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = [json.loads(p.read_text()) for p in sorted((tmp_path / "gpu").glob("*.json"))]
    bench = json.loads((tmp_path / "benchmark.json").read_text())
    assert any(overlaps(a, b) for i, a in enumerate(jobs) for b in jobs[i + 1:])  # two GPUs used at once
    for i, a in enumerate(jobs):
        assert sum(overlaps(a, b) for b in jobs) <= 2  # itself and at most one other
        for b in jobs[i + 1:]:
            if overlaps(a, b):
                assert a["gpu"] != b["gpu"], (a, b)
    assert not any(overlaps(bench, j) for j in jobs)


def test_the_workflow_wraps_gpu_jobs_and_gives_benchmarks_every_core(tmp_path):
    """The real rules, planned for a CUDA setup: model jobs go through gpu_slot and ask for a GPU;
    benchmark jobs (exclusive) take every core Snakemake was given."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "3", "--snakefile",
                          str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                          str(ROOT / "config" / "llama2-7b.yaml")], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "QUANTBENCH_ASSUME_CUDA": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    from quantbench.requests_table import jobs

    planned = jobs(out.stdout)
    bench = [j for j in planned if j["rule"] == "benchmark"]
    assert bench and all(j["threads"] == 3 and j["gpu"] == "1" for j in bench)
    assert all(j["gpu"] == "0" for j in planned if j["rule"] in ("build_corpus", "report"))
    commands = [line for line in out.stdout.splitlines() if line.startswith("Shell command:")]
    for script in ("quantize.py", "benchmark.py", "finetune.py", "build_random_model.py"):
        lines = [c for c in commands if f"workflow/scripts/{script}" in c]
        assert lines and all("python -m quantbench.gpu_slot --share 1 " in c for c in lines), script
    bench_lines = [c for c in commands if "workflow/scripts/benchmark.py" in c]
    assert all("--share 1 --alone -- " in c for c in bench_lines)
    assert not any("gpu_slot" in c for c in commands if "build_toy_data.py" in c or "report.py" in c)


def test_a_shared_gpu_holds_n_jobs_and_an_alone_job_waits_for_all_of_them(tmp_path):
    """jobs_per_gpu: 2 on one GPU: two jobs share it, a third waits; a benchmark (--alone) runs only
    when both slots are free, and nothing starts on its GPU meanwhile."""
    (tmp_path / "job.py").write_text(RECORDER)
    env = {**slot_env(tmp_path), "CUDA_VISIBLE_DEVICES": "0"}

    def start(name, *flags, hold="1.5"):
        return subprocess.Popen([sys.executable, "-m", "quantbench.gpu_slot", "--share", "2", *flags, "--",
                                 sys.executable, str(tmp_path / "job.py"), str(tmp_path / f"{name}.json"), hold],
                                env=env)

    import time

    first = [start(f"s{i}") for i in range(2)]
    time.sleep(0.5)  # both shared jobs hold their slots before the alone one asks
    procs = [*first, start("alone", "--alone"), start("s2")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    shared = [json.loads((tmp_path / f"s{i}.json").read_text()) for i in range(3)]
    alone = json.loads((tmp_path / "alone.json").read_text())
    assert overlaps(shared[0], shared[1])
    assert not any(overlaps(alone, j) for j in shared)
    assert {j["gpu"] for j in [*shared, alone]} == {"0"}


def test_the_slot_count_follows_the_config_the_command_line_names(tmp_path):
    from quantbench.gpu_slot import jobs_per_gpu

    (tmp_path / "a.yaml").write_text("jobs_per_gpu: 4\n")
    (tmp_path / "b.yaml").write_text("seed: 1\n")
    assert jobs_per_gpu(["--cores", "all"]) == 1
    assert jobs_per_gpu(["--configfile", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]) == 4
    assert jobs_per_gpu([f"--configfile={tmp_path / 'a.yaml'}", "--config", "jobs_per_gpu=3", "-n"]) == 3
    env = {**slot_env(tmp_path), "CUDA_VISIBLE_DEVICES": "0,1"}
    out = subprocess.run([sys.executable, "-c", "import sys; from quantbench.gpu_slot import slots_on_this_machine "
                          "as s; print(s(sys.argv[1:]))", "--configfile", str(tmp_path / "a.yaml")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "8", out.stderr
