"""torchao and HQQ on a tiny real Llama, through the real libraries: a saved folder reloads to the
same logits as the model quantized in memory; the quantized model differs from float32, by less
than a naive quantizer of the same bit width; bits_per_weight matches what the layers store."""
from __future__ import annotations

import pytest
import torch

from quantbench.atomic import atomic_dir
from quantbench.backends import get
from quantbench.modelio import RunContext, load_causal_lm, load_model, write_meta

CASES = {
    "torchao-int8wo": ("torchao", {"scheme": "int8-weight-only", "group_size": -1}),
    "torchao-int8dyn": ("torchao", {"scheme": "int8-dynamic", "group_size": -1}),
    "hqq-8bit-g32": ("hqq", {"bits": 8, "group_size": 32}),
    "hqq-4bit-g32": ("hqq", {"bits": 4, "group_size": 32}),
    "hqq-3bit-g32": ("hqq", {"bits": 3, "group_size": 32}),
    "hqq-2bit-g32": ("hqq", {"bits": 2, "group_size": 32}),
}
WEIGHT_BITS = {"torchao": 8}  # torchao's int8 schemes; HQQ's come from the case
QUANTIZED_ACTIVATIONS = {"torchao-int8dyn"}


def _saved(name: str, src, tmp_path, dtype_name: str = "float32"):
    backend, params = CASES[name]
    ctx = RunContext(dtype_name=dtype_name)
    out = tmp_path / name
    with atomic_dir(out) as tmp:
        get(backend).quantize(str(src), tmp, params, ctx)
        write_meta(tmp, {"method": name, "backend": backend, "params": params})
    return out, ctx


def _in_memory(name: str, src, ctx):
    """The same quantization done in this process, never saved."""
    backend, params = CASES[name]
    if backend == "torchao":
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(
            str(src), quantization_config=get("torchao").quantization_config(params), dtype=ctx.dtype)
    from hqq.models.hf.base import AutoHQQHFModel

    model, _ = load_causal_lm(str(src), ctx.device, ctx.dtype)
    AutoHQQHFModel.quantize_model(model, quant_config=get("hqq").quant_config(params), compute_dtype=ctx.dtype,
                                  device=ctx.device)
    return model


def _log_probs(model, ids) -> torch.Tensor:
    with torch.inference_mode():
        return model(ids).logits.double().log_softmax(-1)


def _kl(ref: torch.Tensor, other: torch.Tensor) -> float:
    return (ref.exp() * (ref - other)).sum(-1).mean().item()


def _round(t: torch.Tensor, levels: int) -> torch.Tensor:
    scale = t.abs().max() / levels
    return (t / scale).round().clamp(-levels, levels) * scale


def _naive(model, bits: int, activations: bool = False):
    """Round-to-nearest with one scale per weight matrix (no groups, no fitting), and with
    `activations` each linear layer's input rounded likewise with one scale per call: the crude
    quantizer every real scheme of the same bit width must beat."""
    levels = 2 ** (bits - 1) - 1
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and name != "lm_head":
                module.weight.copy_(_round(module.weight, levels))
                if activations:
                    module.register_forward_pre_hook(lambda _, args: (_round(args[0], levels),))
    return model


@pytest.fixture(scope="module")
def prompt(tiny_model):
    from quantbench.modelio import load_tokenizer

    tok = load_tokenizer(str(tiny_model))
    return tok(["the capital of kalo is renva . one plus two is three"] * 2, return_tensors="pt").input_ids


@pytest.fixture(scope="module")
def fp32(tiny_model, prompt):
    model, _ = load_causal_lm(str(tiny_model), "cpu", torch.float32)
    return _log_probs(model, prompt)


@pytest.mark.parametrize("name", list(CASES))
def test_reload_matches_memory_and_beats_naive_rounding(name, tiny_model, tmp_path, prompt, fp32):
    out, ctx = _saved(name, tiny_model, tmp_path)
    reloaded, _, info = load_model(str(out), ctx)
    saved = _log_probs(reloaded, prompt)
    assert torch.equal(saved, _log_probs(_in_memory(name, tiny_model, ctx), prompt)), info
    backend, params = CASES[name]
    bits = WEIGHT_BITS.get(backend) or params["bits"]
    naive = _naive(load_causal_lm(str(tiny_model), "cpu", torch.float32)[0], bits, name in QUANTIZED_ACTIVATIONS)
    kl, kl_naive = _kl(fp32, saved), _kl(fp32, _log_probs(naive, prompt))
    # Quantized weights change the output (a backend that silently skipped its layers would not),
    # and by less than per-tensor rounding at the same width: both schemes use finer scales
    # (per row, per token, or per group of 32 fitted by HQQ's solver) on the same tensors.
    assert 0 < kl < kl_naive, (kl, kl_naive)


def test_hqq_damage_grows_as_bits_shrink(tiny_model, tmp_path, prompt, fp32):
    kl = {}
    for bits in (8, 4, 3, 2):
        out, ctx = _saved(f"hqq-{bits}bit-g32", tiny_model, tmp_path)
        kl[bits] = _kl(fp32, _log_probs(load_model(str(out), ctx)[0], prompt))
    assert kl[2] > kl[3] > kl[4] > kl[8] > 0, kl


def _stored_bits(model) -> float:
    """Bits the quantized linear layers hold per weight: packed values, scales, zero points."""
    from hqq.core.quantize import HQQLinear
    from torchao.utils import TorchAOBaseTensor

    from quantbench.memory import storage_tensors

    stored = weights = 0
    for module in model.modules():
        if isinstance(module, HQQLinear):
            tensors = [module.W_q] + [v for v in module.meta.values() if isinstance(v, torch.Tensor)]
            weights += module.in_features * module.out_features
        elif isinstance(getattr(module, "weight", None), TorchAOBaseTensor):
            tensors = list(storage_tensors(module.weight))
            weights += module.weight.numel()
        else:
            continue
        stored += sum(t.numel() * t.element_size() * 8 for t in tensors)
    return stored / weights


@pytest.mark.parametrize("name", ["hqq-8bit-g32", "hqq-4bit-g32", "hqq-3bit-g32", "hqq-2bit-g32"])
def test_hqq_bits_per_weight_is_what_the_layers_store(name, tiny_model, tmp_path):
    # In float16, the dtype HQQ's figure counts its scale and zero point in (as on a GPU).
    out, ctx = _saved(name, tiny_model, tmp_path, dtype_name="float16")
    nominal = get("hqq").bits_per_weight(CASES[name][1])
    stored = _stored_bits(load_model(str(out), ctx)[0])
    # 3 bits pack ten values per int32, so a layer's group count is padded to a multiple of ten.
    pad = 0.1 if CASES[name][1]["bits"] == 3 else 0
    assert nominal <= stored <= nominal + pad, (stored, nominal)


@pytest.mark.parametrize("name", ["torchao-int8wo", "torchao-int8dyn"])
def test_torchao_bits_per_weight_is_the_int8_data_plus_one_scale_per_row(name, tiny_model, tmp_path):
    import json

    out, ctx = _saved(name, tiny_model, tmp_path)
    widths = json.loads((tiny_model / "config.json").read_text())
    narrowest = min(widths["hidden_size"], widths["intermediate_size"])
    nominal = get("torchao").bits_per_weight(CASES[name][1])
    stored = _stored_bits(load_model(str(out), ctx)[0])
    # Per row: a float32 scale and an int8 zero point beside the row's int8 values.
    assert nominal <= stored <= nominal + (32 + 8) / narrowest, (stored, nominal)


def test_hqq_spec_is_what_hqq_supports():
    from hqq.core.quantize import Quantizer

    assert sorted(get("hqq").SPEC["bits"]) == sorted(Quantizer.SUPPORTED_BITS)
    assert set(get("hqq").STORED_BITS) == set(Quantizer.SUPPORTED_BITS)


@pytest.mark.parametrize("name", ["hqq-4bit-g32", "torchao-int8wo"])
def test_dequantized_base_computes_what_the_quantized_one_does(name, tiny_model, tmp_path, prompt):
    """merge_into: [dequant] starts from these weights: they must be the quantized model's own."""
    from hqq.core.quantize import HQQLinear
    from torchao.utils import TorchAOBaseTensor

    out, ctx = _saved(name, tiny_model, tmp_path)
    quantized = _log_probs(load_model(str(out), ctx)[0], prompt)
    plain = get(CASES[name][0]).dequantize(str(out), ctx)
    assert not any(isinstance(m, HQQLinear) for m in plain.modules())
    assert not any(isinstance(p, TorchAOBaseTensor) for p in plain.parameters())
    # The same weights in float32; only the order of the matmul's rounding differs.
    assert torch.allclose(_log_probs(plain, prompt), quantized, atol=1e-5)
