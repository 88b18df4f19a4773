"""GGUF methods through the whole workflow with real Snakemake and real llama.cpp: a tiny random
Llama with SmolLM2's tokenizer is converted and quantized by llama.cpp, benchmarked and evaluated
(lm-eval tasks on WordNet and KL against the float32 model) from the .gguf files; then changing
one GGUF method's type reruns only that method's jobs and the report. The llamacpp serving engine
(benchmark.engines) measures the GGUF variants, and changing its cells reruns none of the builtin benchmarks."""
from __future__ import annotations

import json

import pandas as pd
import yaml

from tests.conftest import copy_project, snakemake
from tests.test_interrupt import _jobs

NAME = "tiny-gguf"
R = f"results/{NAME}"


def _config(model_path) -> dict:
    return {
        "model": {"name": NAME, "source": "pretrained", "path": str(model_path)},
        "device": "cpu", "seed": 7, "max_threads": 1, "unsupported_methods": "error",
        "data": {"source": "wordnet", "calibration_samples": 8, "calibration_seq_len": 32},
        "methods": {"fp32": {"backend": "none", "dtype": "float32"},
                    "gguf-q8_0": {"backend": "gguf", "type": "Q8_0"},
                    "gguf-q4": {"backend": "gguf", "type": "Q4_0"}},
        "baseline": "fp32",
        "benchmark": {"exclusive": False, "warmup": 0, "repeats": 2, "roofline": False,
                      "prefill": {"prompt_len": 8, "batch_sizes": [1, 2]},
                      "generate": {"prompt_len": 4, "new_tokens": [4], "batch_sizes": [1], "use_cache": [True]},
                      "engines": ["builtin", "llamacpp"],
                      "engine_cells": {"prompt_tokens": 4, "new_tokens": 3, "batch_sizes": [1, 2], "prefill_tokens": 8,
                                       "warmup": 0, "repeats": 2,
                                       "throughput": {"requests": 2, "prompt_tokens": 6, "new_tokens": 3}}},
        "evaluate": {"suite": "wordnet", "num_fewshot": 0, "limit": 8, "batch_size": 8,
                     "distribution_tokens": 512, "distribution_window": 64, "distribution_top_k": 64},
    }


def _record(work, stage, name) -> dict:
    return json.loads((work / R / "records" / stage / f"{name}.json").read_text())


def test_gguf_methods_run_end_to_end_and_a_type_change_reruns_only_its_jobs(smol_tiny, tmp_path):
    work = copy_project(tmp_path)
    cfg = _config(smol_tiny)
    (work / "gguf.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake(work, "--configfile", "gguf.yaml", timeout=1500)

    q4 = _record(work, "quantize", "gguf-q4")["metrics"]
    assert q4["tensor_types"].get("Q4_0", 0) > 0 and q4["converted_as"] == "f32"
    assert q4["bits_per_weight"] == 4.5  # measured from the file: 18 bytes per block of 32
    bench = _record(work, "benchmark", "gguf-q4")
    assert bench["kernel"] == "llama.cpp-cpu" and bench["load"]["n_threads"] == 1
    outcomes = {(c["scenario"], c["batch_size"]): c["outcome"] for c in bench["cells"]}
    assert outcomes[("prefill", 1)] == "ok" and outcomes[("prefill", 2)] == "ok"  # both rows in one context
    quality = {m: _record(work, "evaluate", m)["metrics"] for m in ("gguf-q8_0", "gguf-q4")}
    assert 0 < quality["gguf-q8_0"]["kl_mean"] < quality["gguf-q4"]["kl_mean"], quality
    assert all(v is not None for q in quality.values() for v in q["tasks"].values()), quality
    summary = pd.read_csv(work / R / "report" / "summary.csv").set_index("variant")
    assert summary.loc["gguf-q4", "weights_memory_mb"] < summary.loc["gguf-q8_0", "weights_memory_mb"]
    report_md = (work / R / "report" / "report.md").read_text()
    assert "could not run as asked" not in report_md
    engine_rows = pd.read_csv(work / R / "report" / "engines.csv")
    # llama.cpp's cells for the GGUF variants, and quantbench's own (builtin) at the same lengths beside them
    assert sorted(zip(engine_rows.engine, engine_rows.variant)) == [
        ("builtin", "gguf-q4"), ("builtin", "gguf-q8_0"), ("llamacpp", "gguf-q4"), ("llamacpp", "gguf-q8_0")]
    assert (engine_rows[["call_ms_per_token_b1", "call_ms_per_token_b2", "prefill_ms"]] > 0).all().all()
    decode = engine_rows[["decode_ms_per_token_b1", "decode_ms_per_token_b2"]]
    assert ((decode > 0) | decode.isna()).all().all()  # a step below the per-call noise is unresolved, not negative
    assert _record(work, "engine/llamacpp", "gguf-q4")["engine"]["n_gpu_layers"] == 0
    assert "Not run by llamacpp: fp32 (llamacpp does not load unquantized folders here; vllm does)" in report_md

    cfg["methods"]["gguf-q4"]["type"] = "Q4_1"
    (work / "gguf.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = snakemake(work, "--configfile", "gguf.yaml", "-n")
    jobs = _jobs(proc.stdout)
    assert jobs == {"quantize": 1, "benchmark": 1, "benchmark_engine": 2, "evaluate": 1, "report": 1, "all": 1}, jobs
    planned = [line for line in proc.stdout.splitlines() if line.strip().startswith("output:")]
    assert planned and not any("gguf-q8_0" in line or "/fp32" in line for line in planned), planned

    cfg["methods"]["gguf-q4"]["type"] = "Q4_0"  # back to what ran; then only the engine's cells change
    cfg["benchmark"]["engine_cells"]["repeats"] = 3
    (work / "gguf.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    jobs = _jobs(snakemake(work, "--configfile", "gguf.yaml", "-n").stdout)
    assert jobs == {"benchmark_engine": 4, "report": 1, "all": 1}, jobs
