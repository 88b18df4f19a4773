"""llama.cpp in a worker process (quantbench/llamacpp_worker.py), the path a GGUF model offloaded to the GPU
takes because the CUDA builds of llama.cpp made on GPU nodes crashed in a process that had imported PyTorch's
CUDA build, or numpy before llama.cpp (results/reference/h100/smollm2-135m-cuda-gguf-gpu/). Checked
here with the CPU build: the worker computes what the job's own process computes, bit for bit, never
imports torch, and a worker that fails or dies is an error naming the call, not a hang or a wrong number."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from quantbench import kv_llamacpp, llamacpp
from quantbench.llamacpp_worker import WorkerDied

assert llamacpp.available() is None, llamacpp.available()  # scripts/test.sh installs llama.cpp


@pytest.fixture(scope="module")
def pair(q8_folder):
    inline = llamacpp.LlamaCppModel(q8_folder, 1, 256)
    worker = llamacpp.LlamaCppModel(q8_folder, 1, 256, process="worker")
    yield inline, worker
    inline.close()
    worker.close()


def test_the_worker_answers_every_call_as_the_jobs_own_process_does(pair):
    inline, worker = pair
    assert (inline.process, worker.process) == ("inline", "worker")
    ids = list(range(100, 160))
    assert np.array_equal(worker.logits(ids), inline.logits(ids))
    assert np.array_equal(worker.logits(ids, keep_last=3), inline.logits(ids, keep_last=3))
    assert worker.greedy(ids[:20], 12) == inline.greedy(ids[:20], 12)
    rows = torch.tensor([ids[:24], ids[10:34], ids[20:44]])
    mask = torch.ones_like(rows)
    mask[1, :5] = 0  # a left-padded row
    assert torch.equal(worker(rows, mask, logits_to_keep=1).logits, inline(rows, mask, logits_to_keep=1).logits)
    assert torch.equal(worker.generate(rows, mask, max_new_tokens=6), inline.generate(rows, mask, max_new_tokens=6))
    info, inline_info = worker.info(), inline.info()
    assert info["process"] == "worker" and inline_info["process"] == "inline"
    assert 0 < info["worker_roundtrip_ms"] < 1e3  # measured when it started: what each timed call carries
    assert {k: v for k, v in info.items() if k not in ("process", "worker_roundtrip_ms")} == \
        {k: v for k, v in inline_info.items() if k != "process"}


def test_the_worker_never_imports_torch(pair):
    _, worker = pair
    assert "torch" in __import__("sys").modules  # this process has it, as every job's has
    assert worker.engine.torch_imported() is False
    # a CUDA build made on a GPU node crashed in any process that imported numpy before llama.cpp's libraries
    assert worker.engine.libraries_before_numpy() is True
    with pytest.raises(RuntimeError, match="worker process"):
        worker._llm  # noqa: B018 - the Llama object is in the worker, not here


def test_a_failed_call_comes_back_as_its_own_exception_and_the_worker_goes_on(pair):
    _, worker = pair
    with pytest.raises(ValueError, match="^300 tokens exceed llama.cpp's context of 256$"):
        worker.logits(list(range(300)))
    assert worker.greedy([5, 6, 7], 2) == pair[0].greedy([5, 6, 7], 2)


def test_a_worker_that_dies_is_an_error_naming_the_call_and_the_signal(q8_folder):
    model = llamacpp.LlamaCppModel(q8_folder, 1, 256, process="worker")
    os.kill(model.engine._proc.pid, signal.SIGKILL)
    model.engine._proc.wait()
    with pytest.raises(WorkerDied, match=r"^llama.cpp's worker process ended during logits \(killed by SIGKILL\)"):
        model.logits([1, 2, 3])
    with pytest.raises(RuntimeError, match="closed"):
        model.logits([1, 2, 3])
    model.close()  # closing a dead worker again is quiet


def test_closing_a_worker_stuck_in_a_call_kills_it_instead_of_waiting(q8_folder, monkeypatch):
    from quantbench import llamacpp_worker

    monkeypatch.setattr(llamacpp_worker, "STOP_TIMEOUT_S", 1)
    model = llamacpp.LlamaCppModel(q8_folder, 1, 256, process="worker")
    proc = model.engine._proc
    os.kill(proc.pid, signal.SIGSTOP)  # as a call that never returns
    model.close()
    assert proc.returncode == -signal.SIGKILL


def test_a_load_that_fails_in_the_worker_is_the_same_error_and_leaves_no_process(q8_folder, tmp_path):
    (tmp_path / llamacpp.GGUF_FILE).write_bytes(b"not a gguf file")
    (tmp_path / "config.json").write_text((q8_folder / "config.json").read_text())
    children_before = _children()
    with pytest.raises(ValueError):  # llama-cpp-python's own error for a file it cannot load
        llamacpp.LlamaCppModel(tmp_path, 1, 256, process="worker")
    assert _children() == children_before
    with pytest.raises(ValueError, match="^process: 'thread'; allowed: inline, worker$"):
        llamacpp.LlamaCppModel(q8_folder, 1, 256, process="thread")


def test_the_kv_cache_stage_runs_through_the_worker_as_in_process(q8_folder):
    spec = None  # llama.cpp's plain f16 cache
    inline = kv_llamacpp.LlamaCppKV(q8_folder, 1, 256, 32, spec)
    worker = kv_llamacpp.LlamaCppKV(q8_folder, 1, 256, 32, spec, process="worker")
    try:
        window = torch.arange(100, 164)
        a = list(kv_llamacpp.chunked_logprobs(inline, window, 32))
        b = list(kv_llamacpp.chunked_logprobs(worker, window, 32))
        assert [s for s, _, _ in a] == [s for s, _, _ in b] == [0, 32]
        assert all(torch.equal(x[1], y[1]) and torch.equal(x[2], y[2]) for x, y in zip(a, b))
        steps = [kv_llamacpp.decode_steps(m, list(range(200, 240)), 4) for m in (inline, worker)]
        assert steps[0]["state_bytes"] == steps[1]["state_bytes"] > 0
        assert steps[0]["tokens_in_cache"] == steps[1]["tokens_in_cache"] == 44
    finally:
        inline.close()
        worker.close()


def _children() -> set[int]:
    import pathlib

    me = os.getpid()
    out = set()
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def test_a_llama_cpp_model_on_a_cuda_run_has_its_peak_memory_marked_unmeasured_not_read_from_torch():
    from quantbench import memory

    cell = {"median_s": 0.01, "peak_memory_mb": 3.5, "peak_reserved_mb": 20.0}
    gpu = memory.unmeasured_on_cuda("llama.cpp", {"n_gpu_layers": -1, "process": "worker"})
    assert gpu == ("llama.cpp holds its model's GPU memory in its worker process, outside torch's CUDA allocator: "
                   "not measured")
    host = memory.unmeasured_on_cuda("llama.cpp", {"n_gpu_layers": 0, "process": "inline"})
    assert host.startswith("llama.cpp holds its model's host memory, outside")
    assert memory.unmeasured_on_cuda("torch", {}) is None
    assert memory.mark_unmeasured(cell, gpu) == {"median_s": 0.01, "peak_memory_mb": None, "peak_reserved_mb": None,
                                                 "peak_memory_note": gpu}


def test_window_scores_give_the_comparison_the_full_log_probs_give(pair):
    """evaluate.py lets llama.cpp score each held-out window where its logits are (a 0.5 MB answer from
    the worker instead of a window's 100 MB of logits): KL, top-1, perplexity and the scoreboard come out
    as from the full log-probs, within float32 rounding of two log-softmax implementations."""
    from quantbench import distribution

    inline, worker = pair
    gen = torch.Generator().manual_seed(0)
    windows = torch.randint(100, 2000, (3, 48), generator=gen)
    # a reference that differs from the model: its own log-probs, shifted per token
    full = distribution.next_token_logprobs(inline, windows, "cpu", 1)
    ref = distribution.summarize(torch.log_softmax(full + 0.3 * torch.randn(full.shape, generator=gen), -1),
                                 windows, top_k=16)
    whole = distribution.compare_model(ref, inline, windows, "cpu", 1)
    for model in (inline, worker):
        scored = distribution.compare_model(ref, model, windows, "cpu", 1, window_scores=model.window_scores)
        assert scored.keys() == whole.keys()
        for key in ("kl_mean", "top1_agreement", "perplexity", "perplexity_ratio", "kl_p99", "delta_p_rms"):
            assert scored[key] == pytest.approx(whole[key], rel=1e-4, abs=1e-6), key
        assert whole["kl_mean"] > 1e-3  # a comparison that measures something
