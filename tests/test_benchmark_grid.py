"""The generate grid a config asks for, and the warm-up calls the harness makes, on a tiny real
Llama on the CPU (the CUDA-graph decoders are exercised on the GPU: results/reference/h200/README.md)."""
from __future__ import annotations

import yaml

from quantbench import benchmark
from tests.conftest import ROOT

SPEC7B = yaml.safe_load((ROOT / "config/llama2-7b.yaml").read_text())["benchmark"]["generate"]


def test_llama2_7b_grid_follows_the_comparison_with_narrower_long_cells():
    eager = benchmark.generate_grid(SPEC7B, "eager")
    assert {(b, n, c) for b, n, c in eager if n == 30 and c} == {(b, 30, True) for b in (1, 2, 4, 8, 16)}
    assert {(b, n, c) for b, n, c in eager if not c} == {(b, 30, False) for b in (1, 2, 4, 8, 16)}
    # the generation lengths at batch 1 only (an eager step of the full 7b is host-bound)
    assert {(b, n) for b, n, c in eager if n != 30} == {(1, 128), (1, 512)}
    assert not any(n != 30 and not c for b, n, c in eager)  # use_cache=false only at 30 tokens
    assert SPEC7B["modes"] == ["eager"]  # the fast modes are llama2-7b-fast.yaml's
    assert benchmark.max_new_tokens(SPEC7B) == 512


def test_fast_lengths_extend_the_static_cache():
    spec = {"prompt_len": 30, "new_tokens": [30], "batch_sizes": [1], "fast_new_tokens": [30, 512]}
    assert benchmark.generate_grid(spec, "graphs") == [(1, 30, True), (1, 512, True)]
    assert benchmark.generate_grid(spec, "eager") == [(1, 30, True)]
    assert benchmark.max_new_tokens(spec) == 512


def test_warmup_runs_short_and_timed_runs_full_length(tiny_model):
    from quantbench.loading import load_model
    from quantbench.modelio import RunContext

    model, tok, _ = load_model(str(tiny_model), RunContext(device="cpu", dtype_name="float32"))
    asked = []
    real = model.generate

    def recording_generate(**kwargs):  # the real generate; only its length is noted
        asked.append(kwargs["max_new_tokens"])
        return real(**kwargs)

    model.generate = recording_generate
    spec = {"prompt_len": 4, "new_tokens": [6], "batch_sizes": [2], "use_cache": [True], "warmup_new_tokens": 2}
    rows = benchmark.run_generate(model, model.config.vocab_size, "cpu", spec, warmup=2, repeats=3, seed=0,
                                  avoid={tok.eos_token_id, tok.pad_token_id}, pad_token_id=tok.pad_token_id,
                                  weights_mb=1.0, bandwidth_gb_per_s=None, kv_bytes=4)
    assert asked == [2, 2, 6, 6, 6]
    (row,) = rows
    assert row["outcome"] == "ok" and row["repeats"] == 3 and row["new_tokens"] == 6
    assert row["decode_tokens_per_s"] > 0


def test_graph_modes_without_cuda_are_recorded_unsupported(tiny_model):
    """Were dropped with a job-log warning and an ok record (validation notes them too)."""
    from quantbench.loading import load_model
    from quantbench.modelio import RunContext

    model, tok, _ = load_model(str(tiny_model), RunContext(device="cpu", dtype_name="float32"))
    spec = {"prompt_len": 4, "new_tokens": [3, 5], "batch_sizes": [1, 2], "fast_batch_sizes": [1]}
    for mode in ("compiled", "graphs", "fused"):
        rows = benchmark.run_generate(model, model.config.vocab_size, "cpu", spec, warmup=0, repeats=1, seed=0,
                                      avoid=set(), pad_token_id=tok.pad_token_id, weights_mb=1.0,
                                      bandwidth_gb_per_s=None, kv_bytes=4, mode=mode)
        assert [(r["batch_size"], r["new_tokens"], r["outcome"]) for r in rows] == [(1, 3, "unsupported"),
                                                                                    (1, 5, "unsupported")]
        assert rows[0]["error"] == f"{mode} mode replays CUDA graphs; device is cpu"
