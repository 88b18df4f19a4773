"""Same seed, same result: the toy pipeline in miniature (local data, toy Llama trained, quantized
with bitsandbytes NF4 and GPTQ 4-bit, evaluated) run twice in two separate processes, side by side
and with two threads each, gives byte-identical weights and identical quality figures. No tolerance:
on one machine with one library set, every step is deterministic (see docs/troubleshooting.md).
Beside it: the toy trains to the same bytes with 1 and with 2 threads, and the workflow gives a
training job its thread count and its kernels from the config, whatever the machine's cores."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from quantbench import numerics
from tests.conftest import ROOT, copy_project

WORKER = textwrap.dedent("""
    import json, random, sys
    from pathlib import Path
    import numpy as np
    import torch

    out, threads, seed = Path(sys.argv[1]), int(sys.argv[2]), 7
    torch.set_num_threads(threads)
    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)  # what cli.setup does for every job

    from quantbench import distribution, lmeval
    from quantbench.backends import get
    from quantbench.data import load_texts
    from quantbench.loading import load_model
    from quantbench.modelio import RunContext, write_meta
    from quantbench.toy import data, model

    data.build(out / "data", seed=seed, n_corpus_docs=600)
    toy = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
           "vocab_size": 320, "max_position_embeddings": 128, "train_steps": 15, "train_batch_size": 8,
           "train_seq_len": 32, "learning_rate": 3e-3}
    model.build(data.read_texts(out / "data/corpus.jsonl"), out / "base", toy, seed)
    write_meta(out / "base", {"method": "base", "backend": "none", "params": {"dtype": "float32"}})
    ctx = RunContext(seed=seed, calibration_texts=load_texts(out / "data/calibration.jsonl", 8), calibration_seq_len=32)
    methods = {
        "bnb-nf4": ("bnb", {"bits": 4, "quant_type": "nf4", "double_quant": True, "compute_dtype": "auto"}),
        "gptq-4bit-g32": ("gptq", {"bits": 4, "group_size": 32, "desc_act": False, "sym": True, "kernel": "torch",
                                   "damp_percent": 0.05}),
    }
    for name, (backend, params) in methods.items():
        (out / name).mkdir()
        get(backend).quantize(str(out / "base"), out / name, params, ctx)
        write_meta(out / name, {"method": name, "backend": backend, "params": params})

    ref, tokenizer, _ = load_model(out / "base", ctx)
    windows = distribution.token_windows(tokenizer, load_texts(out / "data/heldout.jsonl"), 256, 64)
    ref_logprobs = distribution.next_token_logprobs(ref, windows, "cpu", 8)
    metrics = {}
    for name in methods:
        m, tok, info = load_model(out / name, ctx)
        dist = distribution.compare(ref_logprobs, distribution.next_token_logprobs(m, windows, "cpu", 8), windows)
        tasks, _ = lmeval.evaluate(m, tok, "toy", {"batch_size": 8, "limit": 6, "seed": seed, "fewshot_seed": 1234,
                                                   "num_fewshot": None}, data_dir=str(out / "data"))
        metrics[name] = {**dist, "tasks": tasks, "kernel": info["kernel"]}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True))
""")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _config_without_temp_paths(path: Path) -> dict:
    """GPTQModel records the random temp folder it offloaded to (offload_to_disk_path) in its
    configs; that path is the only difference between two runs."""
    text = path.read_text()
    config = json.loads(text)

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "offload_to_disk_path"}
        return node
    return strip(config)


def _job_env() -> dict:
    """The environment a workflow job gets: the kernels pinned as common.smk pins them."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # GPTQMODEL_CPU_WORKERS: conftest (gptqmodel_run)
    numerics.pin_kernels(env)
    return env


def test_same_seed_same_weights_and_quality(tmp_path):
    env = _job_env()
    runs = [tmp_path / "a", tmp_path / "b"]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(run), "2"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for run in runs]
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-4000:]
    a, b = runs
    for folder in ("base", "bnb-nf4", "gptq-4bit-g32"):
        weights = sorted(p.name for p in (a / folder).glob("*.safetensors"))
        assert weights, folder
        for name in weights:
            assert _digest(a / folder / name) == _digest(b / folder / name), f"{folder}/{name} differs"
        for name in ("config.json", "quantize_config.json"):
            if (a / folder / name).exists():
                assert _config_without_temp_paths(a / folder / name) == _config_without_temp_paths(b / folder / name)
    for name in ("calibration.jsonl", "heldout.jsonl", "capitals.jsonl"):
        assert _digest(a / "data" / name) == _digest(b / "data" / name)
    metrics_a, metrics_b = (json.loads((r / "metrics.json").read_text()) for r in runs)
    assert metrics_a == metrics_b  # exactly: KL, top-1 agreement, perplexity, task scores
    for m in metrics_a.values():
        assert m["kl_mean"] > 0 and all(v is not None for v in m["tasks"].values())


TRAIN = textwrap.dedent("""
    import json, random, sys
    from pathlib import Path
    import numpy as np
    import torch

    out, threads, seed = Path(sys.argv[1]), int(sys.argv[2]), 7
    torch.set_num_threads(threads)
    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)

    from quantbench.toy import data, model

    data.build(out / "data", seed=seed, n_corpus_docs=600)
    # The default toy's widths (tensors above PyTorch's parallel grain, so the threads share the
    # work), fewer layers and steps.
    toy = {"hidden_size": 192, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4,
           "vocab_size": 512, "max_position_embeddings": 256, "train_steps": 30, "train_batch_size": 8,
           "train_seq_len": 64, "learning_rate": 3e-3}
    stats = model.build(data.read_texts(out / "data/corpus.jsonl"), out / "base", toy, seed)
    (out / "stats.json").write_text(json.dumps({"loss_curve": stats["loss_curve"], "threads": torch.get_num_threads()}))
""")


def test_toy_trains_to_the_same_bytes_with_1_and_2_threads(tmp_path):
    """Two fresh processes, one with one thread and one with two, side by side."""
    runs = {1: tmp_path / "t1", 2: tmp_path / "t2"}
    procs = [subprocess.Popen([sys.executable, "-c", TRAIN, str(run), str(threads)], env=_job_env(), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for threads, run in runs.items()]
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-4000:]
    stats = {t: json.loads((run / "stats.json").read_text()) for t, run in runs.items()}
    assert [stats[t]["threads"] for t in runs] == [1, 2]
    assert stats[1]["loss_curve"] == stats[2]["loss_curve"]
    assert _digest(runs[1] / "base/model.safetensors") == _digest(runs[2] / "base/model.safetensors")


TINY = {
    "model": {"name": "tiny", "source": "toy",
              "toy": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
                      "vocab_size": 320, "max_position_embeddings": 128, "train_steps": 10, "train_batch_size": 8,
                      "train_seq_len": 32, "learning_rate": 3.0e-3}},
    "device": "cpu", "seed": 7, "max_threads": 2,
    "data": {"source": "toy", "calibration_samples": 8, "calibration_seq_len": 32},
    "methods": {"fp32": {"backend": "none", "dtype": "float32"}},
    "baseline": "fp32",
    "benchmark": {"exclusive": False, "warmup": 0, "repeats": 1,
                  "prefill": {"prompt_len": 8, "batch_sizes": [1]},
                  "generate": {"prompt_len": 4, "new_tokens": [2], "batch_sizes": [1], "use_cache": [True]}},
    "evaluate": {"suite": "toy", "limit": 4, "batch_size": 8, "distribution_tokens": 256, "distribution_window": 64},
}


@pytest.mark.skipif("avx2" not in numerics.cpu_flags().split(), reason="pins AVX2 kernels: needs a CPU with AVX2")
def test_training_job_threads_and_kernels_come_from_the_config_not_the_machine(tmp_path):
    """The toy's training job run by real Snakemake with 1 core and with 2: max_threads (2) torch
    threads and AVX2 kernels in both, and the same weights."""
    import yaml

    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED_KERNELS}
    works, procs = {}, {}
    for cores in (1, 2):  # side by side
        works[cores] = work = copy_project(tmp_path / f"cores{cores}")
        (work / "tiny.yaml").write_text(yaml.safe_dump(TINY))
        procs[cores] = subprocess.Popen([sys.executable, "-m", "snakemake", "results/tiny/records/build/base.json",
                                         "--cores", str(cores), "--configfile", "tiny.yaml"],
                                        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    records = {}
    for cores, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-4000:]
        records[cores] = json.loads((works[cores] / "results/tiny/records/build/base.json").read_text())["provenance"]
        records[cores]["weights"] = _digest(works[cores] / "results/tiny/models/base/model.safetensors")
    for prov in records.values():
        assert prov["cpu_threads"] == 2
        assert prov["kernels"] == {"aten_cpu_capability": "AVX2", **numerics.PINNED_KERNELS}
    assert records[1]["weights"] == records[2]["weights"]
