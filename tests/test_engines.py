"""Serving engines (benchmark.engines, quantbench/engines): which variants each engine is asked to load, and
the engine cells measured for real through llama.cpp (the CPU build the tests install) on a GGUF folder."""
from __future__ import annotations

import pytest

from quantbench import engines
from quantbench.engines import cells


@pytest.mark.parametrize("engine, backend, adapter, runs", [
    ("builtin", "hqq", False, True),
    ("vllm", "none", False, True), ("vllm", "gptq", False, True), ("vllm", "awq", False, True),
    ("vllm", "bnb", False, True), ("vllm", "gguf", False, False), ("vllm", "hqq", False, False),
    ("vllm", "exl3", False, False), ("vllm", "gptq", True, False),
    ("llamacpp", "gguf", False, True), ("llamacpp", "none", False, False),
])
def test_each_engine_is_asked_only_for_what_it_loads(engine, backend, adapter, runs):
    why = engines.serves(engine, backend, adapter=adapter)
    assert (why is None) == runs, why
    if not runs:  # the reason names the engine and what stands in the way
        assert why and (f"{engine} does not load" in why or "adapter" in why), why


def test_an_unknown_engine_names_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown engine 'tgi'; allowed: builtin, vllm, llamacpp"):
        engines.serves("tgi", "none")


def test_llamacpp_engine_cells_time_what_they_name(q8_folder):
    from quantbench.engines.llamacpp_runner import LlamaCppRunner

    spec = {"prompt_tokens": 6, "new_tokens": 4, "batch_sizes": [1, 3], "prefill_tokens": 16, "warmup": 0,
            "repeats": 2, "throughput": {"requests": 4, "prompt_tokens": 8, "new_tokens": 3}}
    longest, widest = cells.extent(cells.filled(spec))
    assert (longest, widest) == (17, 4)
    runner = LlamaCppRunner(str(q8_folder), 1, 0, longest)
    try:
        # every row generates exactly what it is asked for: end-of-sequence does not stop it
        assert runner.generate(cells.Prompts(runner.vocab_size, 0, set()).rows(3, 6), 5) == [5, 5, 5]
        out = cells.run(runner, spec, runner.vocab_size, 0, {0, 1, 2})
        info = runner.info()
    finally:
        runner.close()
    assert [c["batch"] for c in out["decode"]] == [1, 3]
    for c in out["decode"]:
        assert c["timing"]["repeats"] == 2 and c["call_ms_per_token"] > 0
        # a difference of two noisy times: a figure where it is above zero, else unresolved with the reason
        assert (c["outcome"], c["ms_per_token"] is not None and c["ms_per_token"] > 0) in (
            ("ok", True), ("unresolved", False)), c
    assert out["prefill"]["prompt_tokens"] == 16 and out["prefill"]["ms"] > 0
    t = out["throughput"]
    assert t["output_tokens_per_s"] == pytest.approx(4 * 3 / t["timing"]["median_s"])
    assert info["engine"] == "llamacpp" and info["n_gpu_layers"] == 0


def test_builtin_engine_cells_on_a_torch_model(smol_tiny):
    """quantbench's own decoders through the same cells (the builtin rows beside each engine's)."""
    from quantbench.engines.builtin_runner import BuiltinRunner
    from quantbench.modelio import RunContext

    spec = {"prompt_tokens": 5, "new_tokens": 3, "batch_sizes": [2], "prefill_tokens": 9, "warmup": 0,
            "repeats": 2, "throughput": {"requests": 3, "prompt_tokens": 6, "new_tokens": 2}}
    runner = BuiltinRunner(str(smol_tiny), RunContext(), "eager", cells.extent(cells.filled(spec))[0])
    out = cells.run(runner, spec, runner.vocab_size, 0, set())
    assert out["decode"][0]["batch"] == 2 and out["decode"][0]["call_ms_per_token"] > 0
    assert runner.info()["engine"] == "builtin" and runner.info()["mode"] == "eager"


def test_fresh_prompts_every_call_and_no_special_ids():
    p = cells.Prompts(500, 3, avoid={120, 121})
    a, b = p.rows(2, 64), p.rows(2, 64)
    assert a != b  # a prefix cache would otherwise time a hit
    assert not {120, 121} & {t for row in a + b for t in row}
    assert all(100 <= t < 500 for row in a + b for t in row)


def test_the_schema_defaults_are_the_cells_defaults():
    """Snakemake fills a partial benchmark.engine_cells from the schema; the cells fill it from DEFAULTS."""
    import yaml

    from tests.conftest import ROOT

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["benchmark"]["properties"]["engine_cells"]["properties"]
    from_schema = {k: v["default"] for k, v in props.items() if "default" in v}
    from_schema["throughput"] = {k: v["default"] for k, v in props["throughput"]["properties"].items()}
    assert from_schema == cells.DEFAULTS
