"""Sensitivity and mixed precision on real quantized layers: moving one group of GPTQ layers into the
baseline, the allocation under a budget, llama.cpp's k-quant placement, and GPTQModel storing the
widths an allocation asks for."""
from __future__ import annotations

import pytest
import torch

from quantbench import distribution, mixed_precision, sensitivity, stored_bits
from quantbench.atomic import atomic_dir
from quantbench.backends import get
from quantbench.backends.groups import bits_with_group_scales
from quantbench.loading import load_model
from quantbench.modelio import RunContext, write_meta
from quantbench.toy import world

GPTQ = {"bits": 3, "group_size": 32, "desc_act": False, "sym": True, "kernel": "torch", "damp_percent": 0.05}


def _quantized(src, tmp_path, params, name, sensitivity_records=()):
    ctx = RunContext(calibration_texts=world.documents(world.make_countries(0), 1, 32), calibration_seq_len=64,
                     sensitivity=list(sensitivity_records))
    out = tmp_path / name
    with atomic_dir(out) as tmp:
        extra = get("gptq").quantize(str(src), tmp, params, ctx)
        write_meta(tmp, {"method": name, "backend": "gptq", "params": params})
    return out, extra


@pytest.fixture(scope="module")
def gptq3(tiny_model, tmp_path_factory):
    return _quantized(tiny_model, tmp_path_factory.mktemp("sens"), GPTQ, "gptq-3bit")


@pytest.fixture(scope="module")
def models(tiny_model, gptq3):
    ctx = RunContext()
    base, tok, _ = load_model(str(tiny_model), ctx)
    quant, _, _ = load_model(str(gptq3[0]), ctx)
    texts = world.documents(world.make_countries(0), 2, 40)
    windows = distribution.token_windows(tok, texts, 1024, 64)
    ref = distribution.reference_summary(base, windows, "cpu", 8, None)
    return base, quant, ref, windows


def test_all_groups_moved_is_the_quantized_model_and_the_baseline_comes_back(models):
    base, quant, ref, windows = models
    units = sensitivity.linear_units(base)
    assert len(units) == 2 * 7  # 2 blocks x q, k, v, o, gate, up, down
    before = distribution.compare_model(ref, base, windows, "cpu", 8)
    rows = sensitivity.measure(base, quant, sensitivity.groups(units, ["block", "projection", "cell"]), ref,
                               windows, "cpu", 8)
    # The GPTQ checkpoint stores the layers it leaves alone (embedding, output head) in float16, so the
    # quantized model's copies are the base's rounded to float16 (checked); with the base's float32 copies
    # put in their place it runs the very tensors "all" runs, in the same kernels: the same bits on any CPU.
    kept = {n: quant.get_submodule(n).weight for n in ("model.embed_tokens", "lm_head")}
    for n, w in kept.items():
        assert torch.equal(base.get_submodule(n).weight.half().float(), w)
        quant.get_submodule(n).weight = base.get_submodule(n).weight
    try:
        whole = distribution.compare_model(ref, quant, windows, "cpu", 8)
    finally:
        for n, w in kept.items():
            quant.get_submodule(n).weight = w
    by = {r["group"]: r for r in rows}
    assert len(rows) == 2 + 7 + 14 + 1
    assert by["all"]["kl_mean"] == whole["kl_mean"]
    assert all(r["kl_mean"] > 0 for r in rows)
    # one group is a part of the damage: less than all of it
    assert max(r["kl_mean"] for r in rows if r["group"] != "all") < by["all"]["kl_mean"]
    assert by["block.0"]["weights"] + by["block.1"]["weights"] == by["all"]["weights"]
    after = distribution.compare_model(ref, base, windows, "cpu", 8)
    assert before["kl_mean"] == after["kl_mean"] == 0.0  # every layer restored


def test_kquant_placement_is_llama_cpps_use_more_bits():
    # src/llama-quant.cpp: i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2, for 30 blocks (SmolLM2) and 32 (Llama-2-7b)
    assert [i for i in range(30) if mixed_precision.kquant_more_bits(i, 30)] == \
        [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]
    assert [i for i in range(32) if mixed_precision.kquant_more_bits(i, 32)] == \
        [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]


def _bpw(bits):
    return bits_with_group_scales(bits, 32)


def _cost(name, bits):
    return _bpw(bits)


def test_greedy_allocation_buys_the_most_kl_per_bit_within_the_budget():
    w = {f"model.layers.{b}.self_attn.{k}": n for b in range(2) for k, n in (("q_proj", 100), ("v_proj", 50))}
    kl3 = {"cell.0.q_proj": 0.010, "cell.0.v_proj": 0.009, "cell.1.q_proj": 0.002, "cell.1.v_proj": 0.001}
    kl4 = {k: v / 4 for k, v in kl3.items()}
    # room for 150 weights at 4 bits: v_proj of block 0 saves the most per bit (0.00675 / 50), then q_proj of 0
    budget = (_bpw(3) * 300 + (_bpw(4) - _bpw(3)) * 150) / 300
    out = mixed_precision.measured_allocation(w, kl3, kl4, "cell", 3, 4, budget, _cost)
    assert out["upgraded"] == ["cell.0.v_proj", "cell.0.q_proj"]
    assert out["average_bits"] == pytest.approx(budget)
    assert out["allocation"]["model.layers.1.self_attn.q_proj"] == 3
    # a budget that fits only 60 weights skips q_proj of block 0 (100) and still takes the 50-weight unit after it
    small = (_bpw(3) * 300 + (_bpw(4) - _bpw(3)) * 60) / 300
    out = mixed_precision.measured_allocation(w, kl3, kl4, "cell", 3, 4, small, _cost)
    assert out["upgraded"] == ["cell.0.v_proj"] and out["average_bits"] <= small
    with pytest.raises(ValueError, match="below what every layer at 3 bits stores"):
        mixed_precision.measured_allocation(w, kl3, kl4, "cell", 3, 4, _bpw(3) - 0.01, _cost)


def test_the_allocation_is_what_gptqmodel_stores(tiny_model, gptq3, tmp_path):
    weights = stored_bits.block_linear_weights(tiny_model)
    mix = {**GPTQ, "mix": {"high_bits": 4, "rule": "kquant"}}
    out, extra = _quantized(tiny_model, tmp_path, mix, "gptq-mix-kquant")
    # 2 blocks: n/8 = 0 and 7n/8 = 1, so block 1 gets more bits: its v_proj and down_proj
    assert extra["mix"]["layers_at_high_bits"] == ["model.layers.1.mlp.down_proj", "model.layers.1.self_attn.v_proj"]
    headers = stored_bits._headers(out)
    for name, n in weights.items():
        rows, cols = headers[f"{name}.qweight"]["shape"]
        width = 4 if name in extra["mix"]["layers_at_high_bits"] else 3
        assert rows * 32 == width * n // cols, name  # int32 words of packed codes per column
    uniform = stored_bits.gptq_bits_per_weight(gptq3[0], weights)
    assert extra["measured_bits_per_weight"] > uniform > _bpw(3)
    # what the allocation counted is what the files hold
    assert extra["measured_bits_per_weight"] == pytest.approx(extra["mix"]["average_bits"], rel=1e-12)
    shapes = stored_bits.block_linear_shapes(tiny_model)
    assert uniform == pytest.approx(sum(stored_bits.gptq_layer_bits(3, 32, shapes[n][0]) * w
                                        for n, w in weights.items()) / sum(weights.values()), rel=1e-12)
    model, _, info = load_model(str(out), RunContext())
    assert info["kernel"] == "TorchLinear"  # GPTQModel's torch kernel, one class for both widths
    with torch.inference_mode():
        assert torch.isfinite(model(torch.tensor([[1, 2, 3, 4]])).logits).all()


def test_the_toy_dag_measures_sensitivity_and_builds_both_mixes(toy_run):
    import json

    import pandas as pd

    root = toy_run / "results/toy-llama"
    for method in ("gptq-3bit-g32", "gptq-4bit-g32"):
        rec = json.loads((root / f"records/sensitivity/{method}.json").read_text())
        groups = {g["group"]: g for g in rec["metrics"]["groups"]}
        assert len(groups) == 4 + 7 + 28 + 1 and rec["metrics"]["tokens"] == 2048
        assert all(g["kl_mean"] > 0 and g["kl_mean_ci95"] >= 0 for g in groups.values())
    low = json.loads((root / "records/sensitivity/gptq-3bit-g32.json").read_text())["metrics"]["groups"]
    high = json.loads((root / "records/sensitivity/gptq-4bit-g32.json").read_text())["metrics"]["groups"]
    assert [g["group"] for g in low] == [g["group"] for g in high]
    # more bits, less damage, for the model as a whole
    assert high[-1]["kl_mean"] < low[-1]["kl_mean"]
    kq = json.loads((root / "records/quantize/gptq-mix34-kquant.json").read_text())["metrics"]
    ms = json.loads((root / "records/quantize/gptq-mix34-measured.json").read_text())["metrics"]
    assert ms["mix"]["budget_bits"] == pytest.approx(kq["mix"]["average_bits"])
    assert ms["mix"]["average_bits"] <= kq["mix"]["average_bits"] + 1e-9
    assert ms["mix"]["layers_at_high_bits"] and ms["mix"]["layers_at_high_bits"] != kq["mix"]["layers_at_high_bits"]
    report = (root / "report/report.md").read_text()
    assert "## Which layers hurt" in report and "sensitivity.png" in report
    table = pd.read_csv(root / "report/sensitivity.csv")
    assert set(table.family) == {"block", "projection", "cell", "all"}
    for name in ("gptq-mix34-kquant", "gptq-mix34-measured"):
        assert (root / f"records/evaluate/{name}.json").exists() and (root / f"records/benchmark/{name}.json").exists()
