"""tools/gpu/comparison.py: the blog's A100 figures as ratios to their fp16 row, ours the same way,
and the blog's sentences read on our cells only as far as their spread allows."""
from __future__ import annotations

import sys

import pandas as pd
import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools" / "gpu"))
import comparison  # noqa: E402


def test_a100_ratios_are_each_row_over_its_fp16_row():
    gen = comparison.a100_ratios("generate-512").set_index(["method", "batch_size"])
    assert gen.at[("gptq", 1), "latency_ms_x_fp16"] == pytest.approx(33.711 / 36.958)
    assert gen.at[("bnb-4bit", 16), "peak_memory_mb_x_fp16"] == pytest.approx(35532.37 / 53986.51)
    pre = comparison.a100_ratios("prefill-512").set_index(["method", "batch_size"])
    assert pre.at[("gptq", 16), "latency_ms_x_fp16"] == pytest.approx(1280.25 / 1209.07)
    assert (pre.xs("fp16")[["latency_ms_x_fp16", "load_s_x_fp16"]] == 1).all().all()


def _cell(variant, batch, tokens_per_s, spread=0.01, use_cache=True, noisy=False):
    return {"variant": variant, "kernel": "k", "scenario": "generate", "mode": "eager", "prompt_len": 30,
            "new_tokens": 30, "batch_size": batch, "use_cache": use_cache, "outcome": "ok",
            "decode_tokens_per_s": tokens_per_s, "decode_ms_per_token": 1000 / tokens_per_s,
            "iqr_over_median": spread, "spread_above_limit": noisy}


def _verdicts(cells):
    bench = comparison._ok(pd.DataFrame(cells))
    table = comparison.claims_section(bench, None)[1]
    return [line.split("|")[4].strip() for line in table.splitlines()[2:]]


def test_a_claim_is_read_only_as_far_as_the_spread_allows():
    base = [_cell("fp16", 4, 1000), _cell("bnb-nf4", 4, 300)]
    assert _verdicts([*base, _cell("gptq-4bit-g128", 4, 600)]) == ["agrees"]
    assert _verdicts([*base, _cell("gptq-4bit-g128", 4, 200)]) == ["disagrees"]
    # 5% apart with 10% spread each: no finding either way
    assert _verdicts([*base, _cell("gptq-4bit-g128", 4, 315, spread=0.1)]) == ["not confirmed: same within noise"]
    assert _verdicts([*base, _cell("gptq-4bit-g128", 4, 600, noisy=True)]) == ["not read (spread above the limit)"]


def test_the_kv_cache_claim_compares_each_variant_with_itself():
    cells = [_cell("fp16", 1, 100), _cell("fp16", 1, 50, use_cache=False)]
    assert _verdicts(cells) == ["agrees"]


def test_a_committed_gpu_report_renders_every_section_with_fp16_at_one():
    text = comparison.render(ROOT / "results/reference/h100/llama2-7b-random-l4/report")
    for title in ("## Prefill, prompt 512", "## The blog's 13b table", "## Generate grid", "## Generation lengths",
                  "## LoRA fine-tuning step", "## The blog's sentences"):
        assert title in text
    assert "| fp16, cache " in text and "(1.00x)" in text
    assert "+lora" not in text  # the blog has no adapter rows
    # the 13b table is the blog's even where our run has no such cell
    assert "| gptq     | exllama  |            1 |" in text and "Ours: not measured" in text
