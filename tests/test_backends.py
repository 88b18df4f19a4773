"""Each backend quantizes a tiny real Llama with the real library, and the folder loads back
through quantbench with the kernel recorded."""
import json

import pytest
import torch

from quantbench.atomic import atomic_dir
from quantbench.backends import get
from quantbench.benchmark import decode_weights_mb
from quantbench.loading import load_model
from quantbench.memory import model_weights_mb
from quantbench.modelio import RunContext, write_meta

CASES = {
    "none": {"dtype": "float32"},
    "bnb-nf4": {"bits": 4, "quant_type": "nf4", "double_quant": True, "compute_dtype": "auto"},
    "bnb-int8": {"bits": 8, "quant_type": "nf4", "double_quant": True, "compute_dtype": "auto"},
    "gptq-4bit": {"bits": 4, "group_size": 32, "desc_act": False, "sym": True, "kernel": "torch",
                  "damp_percent": 0.05},
    "torchao-int8wo": {"scheme": "int8-weight-only", "group_size": -1},
    "torchao-int8dyn": {"scheme": "int8-dynamic", "group_size": -1},
    "hqq-4bit": {"bits": 4, "group_size": 32},
    "awq-4bit": {"bits": 4, "group_size": 32, "zero_point": True, "kernel": "torch"},
}
KERNELS = {"none": "torch-float32", "bnb-nf4": "bnb-nf4-cpu", "bnb-int8": "bnb-int8-cpu", "gptq-4bit": "TorchLinear",
           "torchao-int8wo": "torchao-int8-weight-only-cpu", "torchao-int8dyn": "torchao-int8-dynamic-cpu",
           "hqq-4bit": "hqq-pytorch-cpu", "awq-4bit": "AwqTorchLinear"}
# Backends that save through save_pretrained, so config.json names the quantization; hqq writes
# its own format (config.json + qmodel.pt) and is loaded by its own API.
SAVES_QUANTIZATION_CONFIG = {"bnb", "gptq", "torchao", "awq"}


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
    assert info["kernel"] == KERNELS[name]
    if name != "none":
        base, _, _ = load_model(str(tiny_model), ctx)
        assert model_weights_mb(model) < model_weights_mb(base)
    # What a decode step reads (the roofline's numerator) holds every quantized weight: all the
    # model's bytes but the input embedding table's (a torchao weight counted as no bytes once put
    # torchao int4 at 4% of the roofline on the GPU).
    emb = model.get_input_embeddings().weight
    tied = model.get_output_embeddings().weight.data_ptr() == emb.data_ptr()
    emb_mb = 0 if tied else emb.numel() * emb.element_size() / 2**20
    assert decode_weights_mb(model) >= model_weights_mb(model) - emb_mb - 1e-6
    if name.split("-")[0] in SAVES_QUANTIZATION_CONFIG:
        assert json.loads((out / "config.json").read_text())["quantization_config"]


@pytest.mark.parametrize("name", ["bnb-nf4", "gptq-4bit", "torchao-int8wo", "hqq-4bit", "awq-4bit"])
def test_lora_trains_on_every_trainable_backend(name, tiny_model, tmp_path):
    from quantbench import finetune

    params = {"steps": 6, "batch_size": 4, "seq_len": 32, "learning_rate": 5e-3,
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0,
                       "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}}
    texts = [f"### Instruction:\nName {i}.\n### Response:\nIt is {i}." for i in range(16)]
    out, ctx = _quantize(name, CASES[name], tiny_model, tmp_path)
    model, tokenizer, info = load_model(str(out), ctx, trainable=True)
    peft_model, stats = finetune.train(model, tokenizer, texts, info["backend"], params, "cpu", 0)
    assert stats["trainable_parameters"] > 0 and stats["finetune_step_ms"] > 0
    assert len(stats["loss_curve"]) == 6 and stats["loss_last"] < stats["loss_first"]


@pytest.mark.parametrize("backend", ["gptq", "awq"])
def test_jit_extensions_the_benchmark_prebuilds_are_gptqmodels(backend):
    """Each CUDA kernel names the GPTQModel extension it compiles on first use, which the benchmark
    builds before its clock starts; a misspelt name would leave the build inside load_s."""
    import importlib

    from gptqmodel import extension

    mod = importlib.import_module(f"quantbench.backends.{backend}")  # its kernel tables
    for kernel in mod.KERNELS:
        for dtype_name in ("float16", "bfloat16", "float32"):
            ext = get(backend).jit_extension({"kernel": kernel}, dtype_name)
            assert (ext is None) == (kernel not in mod.JIT), (kernel, ext)
            if ext:
                assert ext in extension.available_extensions(), (kernel, ext)
    assert get("awq").jit_extension({"kernel": "marlin"}, "float32") == "marlin_bf16"  # awq._dtype: bfloat16
    assert get("gptq").jit_extension({"kernel": "marlin"}, "float32") == "marlin_bf16"  # gptq.load on CUDA: bfloat16


def test_every_registered_backend_satisfies_the_contract():
    """Each name a config may use registers one Backend subclass that implements every required
    member (an abstract one left out makes the class uninstantiable) and whose optional parameter
    tables name only parameters it validates."""
    import inspect

    from quantbench.backends import BACKENDS
    from quantbench.backends.base import REGISTRY, Backend

    required = {n for n, m in vars(Backend).items() if getattr(m, "__isabstractmethod__", False)}
    assert required == {"describe", "needs_cuda", "bits_per_weight", "quantize", "load"}
    for name in BACKENDS:
        backend = get(name)
        assert isinstance(backend, Backend) and backend.name == name and REGISTRY[name] is backend
        assert not inspect.isabstract(type(backend))
        assert isinstance(backend.SPEC, dict) and backend.SPEC, name
        assert set(backend.DEFAULTS) <= set(backend.SPEC) and backend.LOAD_ONLY <= set(backend.SPEC), name
        for member in required:
            assert getattr(type(backend), member) is not getattr(Backend, member), (name, member)
    assert [n for n in BACKENDS if get(n).can_dequantize] == ["bnb", "torchao", "hqq", "awq"]
    assert [n for n in BACKENDS if get(n).CALIBRATED] == ["gptq", "awq"]


def test_a_backend_missing_a_required_member_is_refused():
    from quantbench.backends.base import Backend

    class Incomplete(Backend):
        SPEC = {"bits": [4]}

        def describe(self, params):
            return "x"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()
    with pytest.raises(TypeError, match="not in SPEC"):
        type("BadDefaults", (Incomplete,), {"DEFAULTS": {"group_size": 64}})
