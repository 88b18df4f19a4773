"""GGUF's `offload` (quantbench/backends/gguf.py): where llama.cpp runs a method, checked on this CPU-only
machine with its CPU build of llama.cpp. What is checked: the parameter's one-line errors and refusals
(a CPU run; a GPU run whose llama.cpp has no GPU backend, with how to get one), that offload: cpu computes
what it computed before, that offload: gpu is refused at load time by a CPU build instead of quietly running
on the CPU, and that a CUDA setup plans offload: gpu jobs on a GPU slot outside the host's CPU lane. Nothing
here runs llama.cpp on a GPU (docs/running.md, "GGUF on the GPU")."""
from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import yaml

from quantbench import backends, llamacpp, validation
from quantbench.config_messages import ConfigError
from quantbench.modelio import RunContext
from tests.conftest import ROOT, plan

gguf = backends.get("gguf")
SETUPS = {"cpu": yaml.safe_load((ROOT / "config/smollm2.yaml").read_text()),
          "cuda": yaml.safe_load((ROOT / "config/smollm2-cuda.yaml").read_text())}
NO_GPU_BACKEND = ("offload: 'gpu' needs llama.cpp built with a GPU backend, and the installed llama-cpp-python 0.3.36 "
                  "has none")
SKIP_HINT = " (or set unsupported_methods: skip to record it as skipped)"

# scripts/test.sh installs llama.cpp's CPU build: this file checks what that build does with offload: gpu
assert llamacpp.available() is None, llamacpp.available()


def _config(device: str, policy: str = "skip", **methods) -> dict:
    config = copy.deepcopy(SETUPS[device])  # SmolLM2's setup for that device
    config.update(unsupported_methods=policy)
    config["methods"].update(methods)
    return config


def _build(config: dict, capability=None):
    return validation.build(config, cuda_available=config["device"] == "cuda", cuda_capability=capability)


def _errors(config: dict, capability=None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _build(config, capability)
    return info.value.errors


GPU_Q8 = {"gguf-q8_0-gpu": {"backend": "gguf", "type": "Q8_0", "offload": "gpu"}}


def test_offload_takes_cpu_or_gpu_in_one_line():
    errors = _errors(_config("cuda", g={"backend": "gguf", "type": "Q8_0", "offload": "cuda"}), (9, 0))
    assert errors == ["methods.g.offload: 'cuda' is not supported by backend 'gguf'; allowed: cpu, gpu"]
    exp = _build(_config("cpu"))
    assert exp.methods["gguf-q8_0"].params["offload"] == "cpu"  # the default: today's CPU runs


def test_offload_gpu_on_a_cpu_run_is_skipped_or_refused_naming_the_value_and_what_is_allowed():
    exp = _build(_config("cpu", **GPU_Q8))
    assert exp.skipped == {"gguf-q8_0-gpu": "offload: 'gpu' runs llama.cpp's layers on a CUDA GPU"}
    assert "gguf-q8_0" in exp.runnable
    assert _errors(_config("cpu", "error", **GPU_Q8)) == [
        "methods.gguf-q8_0-gpu: offload: 'gpu' runs llama.cpp's layers on a CUDA GPU, and device is 'cpu'; allowed "
        "with device cpu: offload: cpu (the default: llama.cpp on the host's cores)" + SKIP_HINT]


def test_offload_gpu_with_this_cpu_build_is_refused_on_a_gpu_run_with_how_to_get_a_cuda_build():
    """A local GPU run (validation sees the GPU's capability): the installed llama.cpp is the jobs' own."""
    import llama_cpp

    assert not llama_cpp.llama_supports_gpu_offload()  # this machine's build: CPU only
    why = gguf.gpu_unavailable(GPU_Q8["gguf-q8_0-gpu"])
    assert why.startswith(NO_GPU_BACKEND) and "\n" not in why
    assert "bash tools/gpu/build-llamacpp-cuda.sh --target DIR" in why
    exp = _build(_config("cuda", **GPU_Q8), capability=(9, 0))
    assert exp.skipped == {"gguf-q8_0-gpu": why}
    assert {"gguf-q8_0", "gguf-q4_k_m"} <= set(exp.runnable)  # offload: cpu runs as before
    assert _errors(_config("cuda", "error", **GPU_Q8), capability=(9, 0)) == [f"methods.gguf-q8_0-gpu: {why}"
                                                                               + SKIP_HINT]
    assert gguf.gpu_unavailable({"type": "Q8_0", "offload": "cpu"}) is None


def test_a_host_that_plans_for_a_gpu_elsewhere_plans_offload_gpu_and_notes_its_build():
    exp = _build(_config("cuda", **GPU_Q8), capability=None)
    assert "gguf-q8_0-gpu" in exp.runnable
    assert [n for n in exp.notes if n.startswith("methods.gguf-q8_0-gpu: here, " + NO_GPU_BACKEND)], exp.notes
    # offload is chosen at load time: the method shares its CPU twin's quantize job (the same file)
    assert exp.checkpoint_of("gguf-q8_0-gpu") == "gguf-q8_0"


def test_the_host_cpu_lane_is_a_fact_of_the_method_not_only_of_the_backend():
    assert backends.host_cpu_lane("gguf", {"type": "Q8_0", "offload": "cpu"})
    assert backends.host_cpu_lane("gguf", {"type": "Q8_0"})  # a folder written before offload existed
    assert not backends.host_cpu_lane("gguf", {"type": "Q8_0", "offload": "gpu"})
    assert not backends.host_cpu_lane("gptq", {"bits": 4})  # the class fact, HOST_CPU_LANE, by default
    assert gguf.describe({"type": "Q8_0", "offload": "gpu"}) == "GGUF Q8_0 (llama.cpp, every layer on the GPU)"
    assert gguf.describe({"type": "Q8_0", "offload": "cpu"}) == "GGUF Q8_0 (llama.cpp)"


def test_offload_cpu_computes_what_the_cpu_path_computed_before(q8_folder):
    """The same logits, bit for bit, as a llama_cpp.Llama made with the arguments LlamaCppModel passed
    before offload existed; the record says where llama.cpp ran."""
    import llama_cpp

    ids = list(range(100, 160))
    loaded = gguf.load(str(q8_folder), {"type": "Q8_0", "n_ctx": 256, "offload": "cpu"}, RunContext())
    model = loaded.model
    got = model.logits(ids)
    before = llama_cpp.Llama(str(q8_folder / llamacpp.GGUF_FILE), n_ctx=256, n_batch=256, n_threads=model.n_threads,
                             n_threads_batch=model.n_threads, verbose=False, seed=0)
    try:
        model.engine.llm, mine = before, model.engine.llm
        want = model.logits(ids)
    finally:
        model.engine.llm = mine
        before.close()
    assert got.shape == (60, model.n_vocab) and np.array_equal(got, want)
    info = loaded.info
    assert info["kernel"] == "llama.cpp-cpu" and info["n_gpu_layers"] == 0
    assert info["gpu_offload_supported"] is False and info["system_info"].startswith("CPU :")
    # a folder written before the parameter existed loads on the CPU as before
    old = gguf.load(str(q8_folder), {"type": "Q8_0", "n_ctx": 256}, RunContext())
    assert old.info["n_gpu_layers"] == 0 and np.array_equal(old.model.logits(ids), got)
    assert info["process"] == "inline"  # on the CPU llama.cpp runs in the job's own process, as before
    for m in (model, old.model):
        m.close()


def test_offload_gpu_is_refused_at_load_by_this_cpu_build_instead_of_running_on_the_cpu(q8_folder):
    from quantbench import kv_llamacpp

    params = {"type": "Q8_0", "n_ctx": 256, "offload": "gpu"}
    with pytest.raises(RuntimeError) as err:
        gguf.load(str(q8_folder), params, RunContext(device="cuda"))
    assert str(err.value).startswith(NO_GPU_BACKEND)
    with pytest.raises(RuntimeError, match=r"^offload: 'gpu' runs llama.cpp's layers on a CUDA GPU, and this job "
                                           r"runs on 'cpu'; choose offload: cpu"):
        gguf.load(str(q8_folder), params, RunContext(device="cpu"))
    with pytest.raises(RuntimeError, match="^" + re.escape(NO_GPU_BACKEND)):
        kv_llamacpp.LlamaCppKV(q8_folder, 1, 256, 64, None, n_gpu_layers=llamacpp.gpu_layers(params))
    assert llamacpp.gpu_layers(params) == -1 and llamacpp.gpu_layers({"type": "Q8_0"}) == 0


def _blocks(dry_run: str) -> list[str]:
    return re.split(r"^(?=(?:local)?rule \S+:$)", dry_run, flags=re.M)[1:]


def test_a_cuda_setup_plans_offload_gpu_jobs_on_a_gpu_slot_outside_the_host_lane(tmp_path):
    """config/overlays/smollm2-cuda-gguf-gpu.yaml on the SmolLM2 GPU setup, dry run with CUDA assumed: the
    offload: gpu methods' evaluate and benchmark jobs ask for a GPU and run through quantbench.gpu_slot like
    the torch jobs, without the host lane's priority that their CPU twins keep; their checkpoint is the twin's."""
    proc = plan(tmp_path, "smollm2-cuda.yaml", "overlays/smollm2-cuda-gguf-gpu.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "config: methods.gguf-q4_k_m-gpu: here, " + NO_GPU_BACKEND in proc.stdout + proc.stderr
    jobs = {}
    for block in _blocks(out):
        rule = re.match(r"(?:local)?rule (\S+):", block)[1]
        output = re.search(r"^\s+output: ([^,\n]+)", block, re.M)
        if output:
            jobs[(rule, output[1].rsplit("/", 1)[-1])] = block
    for method in ("gguf-q8_0-gpu", "gguf-q4_k_m-gpu", "gguf-q4_0-gpu"):
        cpu_twin = method.removesuffix("-gpu")
        for rule in ("evaluate", "benchmark"):
            block = jobs[(rule, f"{method}.json")]
            assert re.search(r"^\s+resources: .*\bgpu=1\b", block, re.M), block
            assert "python -m quantbench.gpu_slot --share 16" in block, block  # the setup's jobs_per_gpu
            assert not re.search(r"^\s+priority: [1-9]", block, re.M), block  # not the host CPU lane
        assert re.search(r"^\s+priority: 10$", jobs[("evaluate", f"{cpu_twin}.json")], re.M)  # the twin's lane
        assert ("reuse_checkpoint", method) in jobs and ("quantize", cpu_twin) in jobs
        assert ("quantize", method) not in jobs
    assert re.search(r"^\s+resources: .*\bgpu=1\b", jobs[("evaluate", "gguf-q4_k_m.json")], re.M)
