"""Job requests derived from the model's size and the stage (quantbench/resources.py), and how the
workflow reads where it runs from the command line."""
from __future__ import annotations

import yaml

from quantbench import resources
from tests.conftest import ROOT


def config(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


def test_sizes_of_the_shipped_models():
    seven = config("llama2-7b.yaml")
    size = resources.model_size(seven, str(ROOT), str(ROOT))
    assert 6.70e9 < size.parameters < 6.75e9 and size.bytes_per_parameter == 2  # Llama-2-7b: 6.74 B
    seven["model"]["num_hidden_layers"] = 4
    four = resources.model_size(seven, str(ROOT), str(ROOT))
    assert 1.0e9 < four.parameters < 1.1e9  # 4 of 32 layers, embeddings and head whole
    smol = resources.model_size(config("smollm2.yaml"), str(ROOT), str(ROOT))
    assert 134e6 < smol.parameters < 136e6 and smol.bytes_per_parameter == 4  # 134.5 M, float32 base
    toy = resources.model_size(config("config.yaml"), str(ROOT), str(ROOT))
    assert toy.parameters < 3e6


def test_an_unknown_model_is_planned_as_7b_and_says_so():
    cfg = config("llama2-7b-quality.yaml")  # a hub id this machine has never cached
    size, note = resources.planned_size(cfg, str(ROOT), str(ROOT))
    assert size.parameters == 7_000_000_000 and size.bytes_per_parameter == 2
    assert note.startswith("model.path: the size of 'meta-llama/Llama-2-7b-hf' is not known here")


def test_requests_grow_with_the_model_and_the_config_overrides_them():
    small = resources.ModelSize(135_000_000, 4, "x")
    big = resources.ModelSize(13_000_000_000, 2, "x")
    cfg = {"device": "cuda", "benchmark": {"repeats": 5}}
    for stage in ("build", "quantize", "finetune", "merge", "evaluate", "benchmark"):
        assert resources.memory_mb(stage, big, "cuda") > resources.memory_mb(stage, small, "cuda")
        assert resources.memory_mb(stage, big, "cuda") > big.weights_gb * 1000  # the weights fit
        assert resources.runtime_min(stage, big, "cuda") >= resources.runtime_min(stage, small, "cuda")
    assert resources.runtime_min("quantize", big, "cuda", backend="gptq") > \
        resources.runtime_min("quantize", big, "cuda", backend="bnb")
    assert resources.runtime_min("evaluate", big, "cuda", suite="leaderboard-v2") > \
        resources.runtime_min("evaluate", big, "cuda", suite="wordnet")
    derived = resources.job_request("quantize", "quantize", config=cfg, size=big, uses_model=True, environ={})
    assert derived["gpu"] == 1 and "slurm_extra" not in derived
    cfg["resources"] = {"default": {"mem_mb": 1234}, "quantize": {"runtime": 7, "slurm_extra": "--qos=long"},
                        "gpu_model": "h100"}
    set_ = resources.job_request("quantize", "quantize", config=cfg, size=big, uses_model=True,
                                 environ={"QB_SLURM_PARTITION": "gpu"})
    assert set_ == {"mem_mb": 1234, "runtime": 7, "gpu": 1, "gpu_model": "h100", "slurm_partition": "gpu",
                    "slurm_extra": "--qos=long"}
    bench = resources.job_request("benchmark", "benchmark", config=cfg, size=big, uses_model=True, environ={})
    assert bench["slurm_extra"] == "--exclusive"
    light = resources.job_request("report", "light", config={"device": "cuda"}, size=big, uses_model=False,
                                  environ={})
    assert light["gpu"] == 0 and light["mem_mb"] == 2000


def test_the_executor_is_read_from_the_command_line_or_its_profile(tmp_path):
    (tmp_path / "prof").mkdir()
    (tmp_path / "prof" / "config.yaml").write_text("executor: slurm\njobs: 5\n")
    named = resources.executor_named
    assert named(["snakemake", "--cores", "all"], {}) is None
    assert named(["snakemake", "--executor", "slurm"], {}) == "slurm"
    assert named(["snakemake", "-e", "slurm-jobstep", "--mode", "remote"], {}) == "slurm-jobstep"
    assert named(["snakemake", f"--workflow-profile={tmp_path / 'prof'}"], {}) == "slurm"
    assert named(["snakemake"], {"SNAKEMAKE_PROFILE": str(tmp_path / "prof")}) == "slurm"
    assert resources.submits_to_cluster("slurm") and not resources.submits_to_cluster("slurm-jobstep")
    assert not resources.submits_to_cluster(None) and not resources.submits_to_cluster("local")
    assert resources.is_dry_run(["snakemake", "-n"]) and resources.is_dry_run(["snakemake", "-np"])
    assert not resources.is_dry_run(["snakemake", "--cores", "all", "-p"])


def test_the_main_command_plans_a_gpu_setup_here_and_prints_the_requests():
    """On this CPU-only machine: a dry run of a CUDA setup validates (a warning, no error) and ends
    with the table of what each job will ask for."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "QUANTBENCH_ASSUME_CUDA"}
    out = subprocess.run(["bash", "scripts/run.sh", "-n", "--configfile", "config/llama2-7b.yaml"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "a dry run plans without one" in out.stdout
    table = out.stdout[out.stdout.index("What each job will request"):]
    assert "| benchmark | 7 |" in table and "| 1 |  | --exclusive |" in table
    assert "| build_corpus | 1 | 1 | 2000 | 15 | 0 |" in table
