"""Each backend quantizes a tiny real Llama with the real library, and the folder loads back
through quantbench with the kernel recorded."""
import json

import pytest
import torch

from quantbench.atomic import atomic_dir
from quantbench.backends import get
from quantbench.memory import model_weights_mb
from quantbench.modelio import RunContext, load_model, write_meta

CASES = {
    "none": {"dtype": "float32"},
    "bnb-nf4": {"bits": 4, "quant_type": "nf4", "double_quant": True, "compute_dtype": "auto"},
    "bnb-int8": {"bits": 8, "quant_type": "nf4", "double_quant": True, "compute_dtype": "auto"},
    "gptq-4bit": {"bits": 4, "group_size": 32, "desc_act": False, "sym": True, "kernel": "torch",
                  "damp_percent": 0.05},
}


def _quantize(name, params, src, tmp_path):
    backend = name.split("-")[0]
    texts = ["The capital of Kalo is Renva. one plus two is three."] * 16
    ctx = RunContext(calibration_texts=texts, calibration_seq_len=32)
    out = tmp_path / name
    with atomic_dir(out) as tmp:
        get(backend).quantize(str(src), tmp, params, ctx)
        write_meta(tmp, {"method": name, "backend": backend, "params": params})
    return out, ctx


@pytest.mark.parametrize("name", list(CASES))
def test_quantize_and_load(name, tiny_model, tmp_path):
    out, ctx = _quantize(name, CASES[name], tiny_model, tmp_path)
    model, tokenizer, info = load_model(str(out), ctx)
    ids = tokenizer("one plus two is", return_tensors="pt").input_ids
    with torch.inference_mode():
        logits = model(ids).logits
    assert torch.isfinite(logits).all()
    expected = {"none": "torch-float32", "bnb-nf4": "bnb-nf4-cpu", "bnb-int8": "bnb-int8-cpu",
                "gptq-4bit": "TorchLinear"}[name]
    assert info["kernel"] == expected
    if name != "none":
        base, _, _ = load_model(str(tiny_model), ctx)
        assert model_weights_mb(model) < model_weights_mb(base)
        assert json.loads((out / "config.json").read_text())["quantization_config"]


def test_lora_trains_on_gptq_and_bnb(tiny_model, tmp_path):
    from quantbench import finetune

    params = {"steps": 6, "batch_size": 4, "seq_len": 32, "learning_rate": 5e-3,
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0,
                       "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}}
    texts = [f"### Instruction:\nName {i}.\n### Response:\nIt is {i}." for i in range(16)]
    for name in ("bnb-nf4", "gptq-4bit"):
        out, ctx = _quantize(name, CASES[name], tiny_model, tmp_path)
        model, tokenizer, info = load_model(str(out), ctx, trainable=True)
        peft_model, stats = finetune.train(model, tokenizer, texts, info["backend"], params, "cpu", 0)
        assert stats["trainable_parameters"] > 0 and stats["finetune_step_ms"] > 0
        assert len(stats["loss_curve"]) == 6 and stats["loss_last"] < stats["loss_first"]
