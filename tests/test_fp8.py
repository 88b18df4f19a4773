"""torchao's FP8 schemes as torchao methods: float8-weight-only runs on the CPU (its linear
dequantizes the float8 weights) and is quantized, run, counted and LoRA-trained here for real;
float8-dynamic, whose float8 matmul needs CUDA compute capability 8.9, is refused or skipped on the
CPU and on older GPUs before any job, and planned on a CPU host for a CUDA config."""
from __future__ import annotations

import copy

import pytest
import torch
import yaml

from quantbench import config_messages, cuda_capability, validation
from quantbench.atomic import atomic_dir
from quantbench.backends import get
from quantbench.modelio import RunContext, write_meta
from tests.conftest import ROOT
from tests.test_configs import dry_run

DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())
DIMS = [192, 512]  # the default toy model's layer widths
WO = {"backend": "torchao", "scheme": "float8-weight-only"}
DYN = {"backend": "torchao", "scheme": "float8-dynamic"}


def _config(**methods) -> dict:
    cfg = copy.deepcopy(DEFAULT)
    cfg["methods"].update(methods)
    return cfg


def _errors(cfg: dict, **kw) -> list[str]:
    with pytest.raises(config_messages.ConfigError) as info:
        validation.build(cfg, model_dims=DIMS, **kw)
    return info.value.errors


def test_weight_only_runs_on_the_cpu_and_dynamic_is_skipped_there():
    exp = validation.build(_config(**{"fp8-wo": WO, "fp8-dyn": DYN}), cuda_available=False, model_dims=DIMS)
    assert "fp8-wo" in exp.runnable and "fp8-wo" not in exp.skipped
    assert "fp8-dyn" not in exp.runnable and "float8 matmul" in exp.skipped["fp8-dyn"]


def test_dynamic_on_the_cpu_under_policy_error_is_one_line():
    cfg = {**_config(**{"fp8-dyn": DYN}), "unsupported_methods": "error"}
    [err] = _errors(cfg, cuda_available=False)
    assert err.startswith("methods.fp8-dyn: ") and "\n" not in err
    for part in ("'float8-dynamic' runs on CUDA only", "device is 'cpu'", "float8-weight-only"):
        assert part in err, err


def test_a_cuda_config_planned_on_a_cpu_host_validates():
    """No GPU seen (capability None): nothing is refused for want of 8.9; the job checks its node."""
    cfg = {**_config(**{"fp8-dyn": DYN, "fp8-dyn-t": {**DYN, "granularity": "per-tensor"}}),
           "device": "cuda", "unsupported_methods": "error"}
    exp = validation.build(cfg, cuda_available=True, model_dims=DIMS, cuda_capability=None)
    assert {"fp8-dyn", "fp8-dyn-t"} <= set(exp.runnable)


def test_capability_below_8_9_is_refused_and_8_9_up_is_not():
    why = cuda_capability.problem((8, 9), (8, 0), "torchao method 'fp8'")
    assert "8.9 or higher" in why and "this GPU has 8.0" in why
    assert cuda_capability.problem((8, 9), (8, 6), "x") is not None
    for have in [(8, 9), (9, 0), (10, 0), (12, 0)]:
        assert cuda_capability.problem((8, 9), have, "x") is None, have
    assert cuda_capability.problem(None, (7, 5), "x") is None  # a method with no such need
    assert get("torchao").min_cuda_capability({"scheme": "float8-dynamic"}) == (8, 9)
    assert get("torchao").min_cuda_capability({"scheme": "float8-weight-only"}) is None


def test_validation_refuses_or_skips_float8_dynamic_on_an_older_gpu():
    cfg = {**_config(**{"fp8-dyn": DYN, "fp8-wo": WO}), "device": "cuda"}
    [err] = _errors({**cfg, "unsupported_methods": "error"}, cuda_available=True, cuda_capability=(8, 0))
    assert err.startswith("methods.fp8-dyn: ") and "\n" not in err
    assert "8.9 or higher" in err and "this GPU has 8.0" in err and "allowed with device cuda" in err
    exp = validation.build(cfg, cuda_available=True, model_dims=DIMS, cuda_capability=(8, 0))
    assert "8.9" in exp.skipped["fp8-dyn"] and "fp8-wo" in exp.runnable
    on_hopper = validation.build(cfg, cuda_available=True, model_dims=DIMS, cuda_capability=(9, 0))
    assert {"fp8-dyn", "fp8-wo"} <= set(on_hopper.runnable)


def test_nvidia_smi_capability_is_read_as_the_lowest_gpu():
    assert cuda_capability.parse("9.0\n8.0\n") == (8, 0)
    assert cuda_capability.parse("12.0\n") == (12, 0)
    assert cuda_capability.parse("[N/A]\n") is None


def test_the_job_check_passes_on_the_cpu():
    cuda_capability.check_node((8, 9), "cpu", "x")  # a CPU job never asks the GPU


@pytest.mark.parametrize("entry, parts", [
    ({**DYN, "granularity": "per-channel"},
     ["methods.m.granularity", "'per-channel'", "allowed: per-row, per-tensor"]),
    ({**WO, "granularity": "per-tensor"},
     ["methods.m.granularity", "'per-tensor'", "scheme 'float8-weight-only'", "float8-dynamic only"]),
    ({"backend": "torchao", "scheme": "int8-dynamic", "granularity": "per-row"},
     ["methods.m.granularity", "float8-dynamic only"]),
    ({**DYN, "group_size": 64}, ["methods.m.group_size", "64", "allowed: -1"]),
])
def test_granularity_is_validated(entry, parts):
    [err] = _errors(_config(m=entry), cuda_available=False)
    assert err.startswith(parts[0]) and "\n" not in err
    for part in parts:
        assert part in err, err


def test_float8_dynamic_needs_layer_widths_of_sixteens():
    """torchao leaves a linear layer whose widths are not multiples of 16 unquantized, silently."""
    [err] = get("torchao").problems({"scheme": "float8-dynamic", "group_size": -1}, [192, 520])
    assert err.startswith("scheme: ") and "multiples of 16" in err and "520" in err and "float8-weight-only" in err
    assert get("torchao").problems({"scheme": "float8-dynamic", "group_size": -1}, DIMS) == []


def test_fine_tune_bases():
    cfg = _config(**{"fp8-wo": WO, "fp8-dyn": DYN})
    cfg["finetune"]["bases"] = ["fp32", "fp8-wo"]
    validation.build(cfg, cuda_available=False, model_dims=DIMS)
    cfg["finetune"]["bases"] = ["fp32", "fp8-dyn"]
    [err] = _errors(cfg, cuda_available=False)
    assert err.startswith("finetune.bases[1]: 'fp8-dyn' cannot be fine-tuned") and "float8-weight-only" in err


def test_bits_kernel_and_description():
    ao = get("torchao")
    assert ao.bits_per_weight({"scheme": "float8-weight-only", "group_size": -1}) == 8.0
    assert ao.describe({"scheme": "float8-dynamic", "group_size": -1}) == "torchao float8-dynamic, per row"
    assert ao.describe({"scheme": "float8-dynamic", "group_size": -1, "granularity": "per-tensor"}) == \
        "torchao float8-dynamic, per tensor"


def test_float8_weight_only_quantizes_runs_counts_and_trains_on_the_cpu(tiny_model, tmp_path):
    from quantbench import finetune
    from quantbench.benchmark import decode_weights_mb
    from quantbench.loading import load_model
    from quantbench.memory import model_weights_mb

    params = {"scheme": "float8-weight-only", "group_size": -1}
    ctx = RunContext()
    out = tmp_path / "fp8"
    with atomic_dir(out) as tmp:
        get("torchao").quantize(str(tiny_model), tmp, params, ctx)
        write_meta(tmp, {"method": "fp8", "backend": "torchao", "params": params})
    model, tokenizer, info = load_model(str(out), ctx)
    base, _, _ = load_model(str(tiny_model), ctx)
    assert info["kernel"] == "torchao-float8-weight-only-cpu" and info["weight_tensors"] == "Float8Tensor"
    weight = model.model.layers[0].self_attn.q_proj.weight
    assert weight.qdata.dtype == torch.float8_e4m3fn and weight.scale.shape == (weight.shape[0], 1)
    ids = tokenizer("one plus two is", return_tensors="pt").input_ids
    with torch.inference_mode():
        logits, ref = model(ids).logits, base(ids).logits
    # e4m3 keeps 3 mantissa bits: close to the float model, not equal to it
    assert torch.isfinite(logits).all() and 0 < (logits - ref).abs().max() < 0.1 * ref.abs().max()
    # float8 data (1 byte a weight) plus one fp32 scale a row, counted through the tensor's inner tensors
    linear = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)
              and type(m.weight).__name__ == "Float8Tensor"]
    fp8_mb = sum(w.qdata.numel() + 4 * w.scale.numel() for w in linear) / 2**20
    plain_mb = sum(w.numel() * 4 for w in linear) / 2**20
    assert model_weights_mb(base) - model_weights_mb(model) == pytest.approx(plain_mb - fp8_mb, rel=1e-6)
    # and the roofline's bytes a decode step reads hold them too (all but the untied input table)
    emb = model.get_input_embeddings().weight
    assert decode_weights_mb(model) == pytest.approx(model_weights_mb(model) - emb.numel() * 4 / 2**20, rel=1e-6)

    # the merge into 'dequant' reads the float8 weights back as plain ones
    plain = get("torchao").dequantize(str(out), ctx)
    with torch.inference_mode():
        assert torch.allclose(plain(ids).logits, logits, atol=1e-5)

    lora = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    train = {"steps": 6, "batch_size": 4, "seq_len": 32, "learning_rate": 5e-3, "lora": lora}
    texts = [f"### Instruction:\nName {i}.\n### Response:\nIt is {i}." for i in range(16)]
    model, tokenizer, info = load_model(str(out), ctx, trainable=True)
    # PEFT draws the adapter's initial weights from the global generator, which a job seeds at its start
    # (quantbench.cli): seeded here too, so the adapter does not depend on which tests ran before
    torch.manual_seed(0)
    peft_model, stats = finetune.train(model, tokenizer, texts, info["backend"], train, "cpu", 0)
    assert stats["trainable_parameters"] > 0 and stats["loss_last"] < stats["loss_first"]

    # the recipe's last step: merge the adapter into the dequantized base, re-quantize that to FP8
    from quantbench.merge import merged_model
    from quantbench.modelio import load_tokenizer

    peft_model.save_pretrained(tmp_path / "adapter")
    merged = merged_model("dequant", str(tmp_path / "adapter"), str(tiny_model), str(out), ctx)
    merged.save_pretrained(tmp_path / "merged")
    load_tokenizer(str(tiny_model)).save_pretrained(tmp_path / "merged")
    get("torchao").quantize(str(tmp_path / "merged"), tmp_path / "requant", params, ctx)
    requant = get("torchao").load(str(tmp_path / "requant"), params, ctx).model
    with torch.inference_mode():
        merged_logits, requant_logits = merged(ids).logits, requant(ids).logits
    assert type(requant.model.layers[0].self_attn.q_proj.weight).__name__ == "Float8Tensor"
    assert 0 < (requant_logits - merged_logits).abs().max() < 0.1 * merged_logits.abs().max()


def test_a_recipe_may_re_quantize_to_fp8():
    cfg = _config(**{"fp8-wo": WO})
    cfg["recipes"] = [{**cfg["recipes"][0], "requantize": ["gptq-4bit-g32", "fp8-wo"]}]
    exp = validation.build(cfg, cuda_available=False, model_dims=DIMS)
    assert any(v.requant == "fp8-wo" for v in exp.variants)


def test_shipped_cuda_config_plans_the_fp8_methods_on_a_cpu_host(tmp_path):
    """config/smollm2-cuda.yaml dry-runs with CUDA assumed (no GPU here to read a capability from)."""
    import re

    out = dry_run("smollm2-cuda.yaml", tmp_path)
    planned = set(re.findall(r'"variant": "([^"]+)"', out))
    assert {"torchao-fp8wo", "torchao-fp8dyn"} <= planned
