"""torchao, HQQ and AWQ on a tiny real Llama, through the real libraries: a saved folder reloads to the
same logits as the model quantized in memory; the quantized model differs from float32, by less
than a naive quantizer of the same bit width; bits_per_weight matches what the layers store."""
from __future__ import annotations

import pytest
import torch

from quantbench.atomic import atomic_dir
from quantbench.backends import awq, get, hqq, torchao
from quantbench.loading import load_model
from quantbench.modelio import RunContext, load_causal_lm, write_meta

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
            str(src), quantization_config=torchao.quantization_config(params), dtype=ctx.dtype)
    from hqq.models.hf.base import AutoHQQHFModel

    model, _ = load_causal_lm(str(src), ctx.device, ctx.dtype)
    AutoHQQHFModel.quantize_model(model, quant_config=hqq.quant_config(params), compute_dtype=ctx.dtype,
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
    assert set(hqq.STORED_BITS) == set(Quantizer.SUPPORTED_BITS)


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


# --- AWQ through GPTQModel: calibrated, so the cases carry calibration texts -------------------------

AWQ = {"bits": 4, "group_size": 32, "zero_point": True, "kernel": "torch"}
CALIBRATION = ["the capital of kalo is renva . one plus two is three . the river of renva is long"] * 16


def _awq_ctx(dtype_name: str = "float32") -> RunContext:
    return RunContext(dtype_name=dtype_name, calibration_texts=CALIBRATION, calibration_seq_len=32)


@pytest.fixture(scope="module")
def awq_saved(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("awq") / "awq-4bit-g32"
    with atomic_dir(out) as tmp:
        get("awq").quantize(str(tiny_model), tmp, AWQ, _awq_ctx())
        write_meta(tmp, {"method": "awq-4bit-g32", "backend": "awq", "params": AWQ})
    return out


def test_awq_reload_matches_memory_and_beats_naive_rounding(awq_saved, tiny_model, prompt, fp32):
    ctx = _awq_ctx()
    reloaded, _, info = load_model(str(awq_saved), ctx)
    assert info["kernel"] == "AwqTorchLinear" and info["compute_dtype"] == "bfloat16", info
    saved = _log_probs(reloaded, prompt)
    in_memory = awq.quantized(str(tiny_model), AWQ, ctx, in_memory=True)[0].model
    assert torch.equal(saved, _log_probs(in_memory, prompt)), info
    naive = _naive(load_causal_lm(str(tiny_model), "cpu", torch.float32)[0], AWQ["bits"])
    kl, kl_naive = _kl(fp32, saved), _kl(fp32, _log_probs(naive, prompt))
    assert 0 < kl < kl_naive, (kl, kl_naive)


def test_awq_kernels_and_dequantized_base_compute_the_same_weights(awq_saved, prompt, fp32):
    """torch (dequantize, matmul in bfloat16), torch_fused (ATen int4 matmul in float32) and the
    dequantized plain model (merge_into: [dequant]) all compute with the checkpoint's weights."""
    from gptqmodel.nn_modules.qlinear import AWQuantLinear

    bf16 = _awq_ctx("bfloat16")
    torch_kernel = _log_probs(get("awq").load(str(awq_saved), AWQ, bf16).model, prompt)
    plain = get("awq").dequantize(str(awq_saved), bf16)
    assert not any(isinstance(m, AWQuantLinear) for m in plain.modules())
    # The same bfloat16 weights and inputs; only the matmul's summation order may differ.
    assert torch.allclose(_log_probs(plain, prompt), torch_kernel, atol=1e-2)
    loaded = get("awq").load(str(awq_saved), {**AWQ, "kernel": "torch_fused"}, _awq_ctx())
    fused, info = loaded.model, loaded.info
    assert info["kernel"] == "TorchFusedAwqLinear" and info["compute_dtype"] == "float32", info
    plain32 = _log_probs(get("awq").dequantize(str(awq_saved), _awq_ctx()), prompt)
    # Both kernels sit far closer to the dequantized weights than those sit to float32: they differ
    # in rounding (bfloat16, int4 matmul), not in the weights (a wrong layout would be far off).
    damage = _kl(fp32, plain32)
    for kernel in (torch_kernel, _log_probs(fused, prompt)):
        assert _kl(plain32, kernel) < damage / 100, (_kl(plain32, kernel), damage)


def test_awq_fits_every_scale_search_to_every_calibration_token(tiny_model):
    """Texts of different lengths: GPTQModel alone would fit each search to the last text only
    (awq.search_coverage); rows packed to one length give every search all of them."""
    texts = [" ".join(["the river of renva is long"] * n) for n in (1, 2, 3, 5, 7, 4)]
    ctx = RunContext(dtype_name="float32", calibration_texts=texts, calibration_seq_len=32)
    coverage: list[dict] = []
    awq.quantized(str(tiny_model), AWQ, ctx, in_memory=True, coverage=coverage)
    assert coverage and {c["mode"] for c in coverage} == {"batch"}
    assert all(c["retained_tokens"] == c["raw_tokens"] for c in coverage)
    # every token of every text (each cut at 32), in rows of 32: all but the last partial row's
    from quantbench.modelio import load_tokenizer

    tok = load_tokenizer(str(tiny_model))
    tokens = sum(min(32, len(tok(t).input_ids)) for t in texts)
    assert {c["retained_tokens"] for c in coverage} == {tokens // 32 * 32}


def test_awq_damage_grows_as_bits_shrink(tiny_model, tmp_path, prompt, fp32):
    kl = {}
    for bits in (2, 4):
        params = {**AWQ, "bits": bits}
        out = tmp_path / f"awq-{bits}bit"
        with atomic_dir(out) as tmp:
            get("awq").quantize(str(tiny_model), tmp, params, _awq_ctx())
            write_meta(tmp, {"method": out.name, "backend": "awq", "params": params})
        kl[bits] = _kl(fp32, _log_probs(load_model(str(out), _awq_ctx())[0], prompt))
    assert kl[2] > kl[4] > 0, kl


def test_awq_bits_per_weight_is_what_the_layers_store(awq_saved):
    from gptqmodel.nn_modules.qlinear import AWQuantLinear

    model = load_model(str(awq_saved), _awq_ctx())[0]
    stored = weights = 0
    for m in model.modules():
        if isinstance(m, AWQuantLinear):
            stored += sum(t.numel() * t.element_size() * 8 for t in (m.qweight, m.qzeros, m.scales))
            weights += m.in_features * m.out_features
    assert weights and stored / weights == get("awq").bits_per_weight(AWQ)


def test_awq_kernel_table_is_what_gptqmodel_supports():
    from gptqmodel.models._const import DEVICE
    from gptqmodel.nn_modules.qlinear import AWQuantLinear
    from gptqmodel.utils.backend import BACKEND

    kernels = {cls.SUPPORTS_BACKENDS[0]: cls for cls in _subclasses(AWQuantLinear)}
    for name, (backend, bits, groups, where) in awq.KERNELS.items():
        cls = kernels[BACKEND(backend)]
        assert set(bits) == set(cls.SUPPORTS_BITS) & set(awq.SPEC["bits"]), name
        assert groups == cls.SUPPORTS_GROUP_SIZE, name
        devices = set(cls.SUPPORTS_DEVICES)
        runs = {"any": DEVICE.ALL in devices, "cpu": DEVICE.CPU in devices and DEVICE.CUDA not in devices,
                "cuda": DEVICE.CUDA in devices and DEVICE.CPU not in devices and DEVICE.ALL not in devices}
        assert runs[where], (name, devices)


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_awq_leaves_out_8_bits_because_bfloat16_packing_moves_codes():
    """GPTQModel packs AWQ codes from weight + zero * scale in the model's dtype. In bfloat16 that
    sum cannot hold 8-bit steps (zero points up to 255) and codes move; at 4 bits it is exact. If a
    GPTQModel release packs exactly, 8 bits can join awq.SPEC."""
    from gptqmodel.nn_modules.qlinear.torch_awq import AwqTorchLinear
    from gptqmodel.quantization.awq.utils.packing_utils import dequantize_gemm

    torch.manual_seed(0)
    width, group = 64, 32
    moved = {}
    for bits in (4, 8):
        top = 2 ** bits - 1
        codes = torch.randint(0, top + 1, (width, width)).float()
        zeros = torch.randint(0, top + 1, (width, width // group)).float()
        scales = (torch.rand(width, width // group) * 1e-3 + 1e-3).to(torch.bfloat16).float()
        weight = ((codes - zeros.repeat_interleave(group, 1)) * scales.repeat_interleave(group, 1)).to(torch.bfloat16)
        linear = torch.nn.Linear(width, width, bias=False, dtype=torch.bfloat16)
        linear.weight.data = weight
        layer = AwqTorchLinear(bits=bits, group_size=group, sym=False, desc_act=False, in_features=width,
                               out_features=width, dtype=torch.bfloat16)
        layer.pack(linear, scales.to(torch.bfloat16), zeros.to(torch.bfloat16))
        back = dequantize_gemm(layer.qweight, layer.qzeros, layer.scales, bits, group).t()
        moved[bits] = (back != weight).float().mean().item()
    assert moved[4] == 0 and moved[8] > 0.01, moved
    assert 8 not in get("awq").SPEC["bits"]


def test_awq_adapter_merged_into_the_dequantized_base_reproduces_it(awq_saved, tiny_model, tmp_path, prompt):
    """merge_into: [dequant] on an AWQ base: the adapter merged into the dequantized AWQ weights
    computes what the AWQ model with the adapter computes, more closely than merged into float32's."""
    from quantbench import finetune
    from quantbench.merge import merged_model

    ctx = _awq_ctx()
    params = {"steps": 6, "batch_size": 4, "seq_len": 32, "learning_rate": 2e-2,
              "lora": {"r": 4, "alpha": 8, "dropout": 0.0,
                       "target_modules": ["q_proj", "v_proj", "up_proj", "down_proj"]}}
    model, tokenizer, info = load_model(str(awq_saved), ctx, trainable=True)
    trained, _ = finetune.train(model, tokenizer, CALIBRATION, info["backend"], params, "cpu", 0)
    trained.save_pretrained(tmp_path / "adapter")
    served = _log_probs(load_model(str(awq_saved), ctx, adapter=str(tmp_path / "adapter"))[0], prompt)
    kl = {kind: _kl(served, _log_probs(merged_model(kind, str(tmp_path / "adapter"), str(tiny_model),
                                                    str(awq_saved), ctx), prompt))
          for kind in ("dequant", "fp")}
    assert kl["dequant"] < kl["fp"] / 10, kl
