"""Weights MB counts what a bitsandbytes model stores beside its packed weights, so double
quantization's saving shows: on Llamas of the toy's shape, quantized and reloaded through the
project's bnb backend with the real bitsandbytes, the NF4 model without double quantization
outweighs the one with it by exactly the absmax bytes QLoRA's section 3 accounts for (arXiv
2305.14314: 32/64 = 0.5 bit per parameter against 8/64 + 32/(64*256) = 0.127), plus the constants
bitsandbytes keeps per tensor (a 256-entry float32 code table and an offset for the nested
quantization: bitsandbytes.functional.QuantState.as_dict)."""
from __future__ import annotations

import math

import pytest
import torch
import yaml

from quantbench.atomic import atomic_dir
from quantbench.backends import get
from quantbench.benchmark import decode_weights_mb
from quantbench.loading import load_model
from quantbench.memory import model_weights_mb
from quantbench.modelio import RunContext, write_meta
from tests.conftest import ROOT

BLOCK = 64  # bitsandbytes' 4-bit block (quantbench.backends.bnb.BLOCKSIZE_4BIT)
NESTED_BLOCK = 256  # double quantization's block of absmax values
NESTED_CODE_ENTRIES = 256  # the 8-bit dynamic code table of the nested absmax, float32
TOY = yaml.safe_load((ROOT / "config/config.yaml").read_text())["model"]["toy"]
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def absmax_bytes(n: int, double_quant: bool) -> int:
    """Bytes of one weight's absmax state (the 16-entry NF4 code table, stored either way, left out)."""
    blocks = math.ceil(n / BLOCK)
    if not double_quant:
        return 4 * blocks  # a float32 absmax per block
    # an 8-bit absmax per block, a float32 absmax per 256 of those, the code table and the offset
    return blocks + 4 * math.ceil(blocks / NESTED_BLOCK) + 4 * NESTED_CODE_ENTRIES + 4


@pytest.fixture(scope="module", params=["toy", "hidden-64"])
def llama(request, tmp_path_factory, tiny_model):
    """A random Llama of the toy's shape (config/config.yaml: hidden 192, 4 layers; the trained toy
    has the same tensors), or of the 64-wide tiny_model's, with tiny_model's tokenizer."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    dims = TOY if request.param == "toy" else {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                               "num_attention_heads": 2, "vocab_size": 320,
                                               "max_position_embeddings": 128}
    cfg = LlamaConfig(**{k: dims[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                              "num_attention_heads", "vocab_size", "max_position_embeddings")})
    out = tmp_path_factory.mktemp(request.param) / "base"
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    write_meta(out, {"method": "base", "backend": "none", "params": {"dtype": "float32"}})
    shapes = [tuple(m.weight.shape) for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in LINEARS]
    return request.param, out, shapes


def _bnb(src, tmp_path, name: str, params: dict):
    ctx = RunContext()
    full = {"quant_type": "nf4", "double_quant": True, "compute_dtype": "auto", **params}
    with atomic_dir(tmp_path / name) as tmp:
        get("bnb").quantize(str(src), tmp, full, ctx)
        write_meta(tmp, {"method": name, "backend": "bnb", "params": full})
    return load_model(str(tmp_path / name), ctx)[0]


def test_double_quantization_saving_shows_in_weights_mb(llama, tmp_path):
    kind, src, shapes = llama
    dq = _bnb(src, tmp_path, "bnb-nf4", {"bits": 4, "double_quant": True})
    nodq = _bnb(src, tmp_path, "bnb-nf4-nodq", {"bits": 4, "double_quant": False})
    n = [rows * cols for rows, cols in shapes]
    expected = sum(absmax_bytes(k, False) - absmax_bytes(k, True) for k in n) / 2**20
    got = model_weights_mb(nodq) - model_weights_mb(dq)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), (kind, got, expected)
    # QLoRA's figures themselves, per quantized parameter, once the per-tensor constants are set aside
    per_tensor = len(n) * (4 * NESTED_CODE_ENTRIES + 4) * 8
    nested_rounding = sum(32 * (math.ceil(math.ceil(k / BLOCK) / NESTED_BLOCK) - k / BLOCK / NESTED_BLOCK) for k in n)
    saving_bits = (got * 2**20 * 8 + per_tensor + nested_rounding) / sum(n)
    assert saving_bits == pytest.approx(32 / 64 - (8 / 64 + 32 / (64 * 256)), rel=1e-9)
    if kind == "toy":
        # 1.77 M quantized weights: 0.373 bit each outweighs 28 code tables of 1 KB
        assert got > 0.05
    else:
        # 81 920 weights in 14 tensors: the code tables (14 KB) outweigh the absmax saving (3.7 KB),
        # so double quantization stores more here
        assert got < 0
    # a decode step reads the same constants: the untied input embedding table is all that differs
    for model in (dq, nodq):
        emb = model.get_input_embeddings().weight
        assert decode_weights_mb(model) == pytest.approx(
            model_weights_mb(model) - emb.numel() * emb.element_size() / 2**20, rel=1e-12)


def test_int8_weights_mb_counts_its_row_scales(llama, tmp_path):
    kind, src, shapes = llama
    int8 = _bnb(src, tmp_path, "bnb-int8", {"bits": 8})
    base = load_model(str(src), RunContext())[0]
    linear_params = sum(r * c for r, c in shapes)
    # the unquantized rest in float32, each linear weight in one byte, one float32 scale per output row
    rest_mb = model_weights_mb(base) - 4 * linear_params / 2**20
    scales_mb = sum(4 * rows for rows, _ in shapes) / 2**20
    assert model_weights_mb(int8) == pytest.approx(rest_mb + linear_params / 2**20 + scales_mb, rel=1e-9)
    # the first forward pass moves the scales from the weights to the layers' state: still counted
    with torch.inference_mode():
        int8(torch.tensor([[1, 2, 3]]))
    assert model_weights_mb(int8) == pytest.approx(rest_mb + linear_params / 2**20 + scales_mb, rel=1e-9)
