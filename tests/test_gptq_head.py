"""GPTQ's lm_head option: the output head quantized by the real GPTQModel (its own setting for a
head: 8 bits, group 32), counted in the embedding/head part of the weights; refused before any job
for a model whose head is tied to its input embedding (GPTQModel cannot), and refused by the
quantize job itself where the config check could not read the model."""
from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch
import yaml

from quantbench import config_messages, validation
from quantbench.atomic import atomic_dir
from quantbench.backends import get
from quantbench.benchmark import decode_weights_mb
from quantbench.loading import load_model
from quantbench.memory import model_weights_mb, weights_split_mb
from quantbench.modelio import RunContext, write_meta
from tests.conftest import ROOT

PARAMS = {"bits": 4, "group_size": 32, "desc_act": False, "sym": True, "kernel": "torch", "damp_percent": 0.05}
DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())
CTX = dict(calibration_texts=["The capital of Kalo is Renva. one plus two is three."] * 16, calibration_seq_len=32)


def _errors(config, tmp_path):
    with pytest.raises(config_messages.ConfigError) as info:
        validation.load(config, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    return info.value.errors


def test_lm_head_is_validated_like_every_parameter(tmp_path):
    config = copy.deepcopy(DEFAULT)
    config["methods"]["gptq-4bit-g32"]["lm_head"] = "yes"
    assert _errors(config, tmp_path) == ["methods.gptq-4bit-g32.lm_head: 'yes' is not supported by backend 'gptq'; "
                                         "allowed: True, False"]
    config["methods"]["gptq-4bit-g32"]["lm_head"] = True  # the toy's head is its own
    validation.load(config, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    arch = json.loads((ROOT / "config/architectures/tiny-llama.json").read_text())
    (tmp_path / "tied.json").write_text(json.dumps({**arch, "tie_word_embeddings": True}))
    config["model"] = {"name": "r", "source": "random", "architecture": str(tmp_path / "tied.json")}
    errors = _errors(config, tmp_path)
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert errors[0].startswith("methods.gptq-4bit-g32.lm_head: true") and "tie_word_embeddings: true" in errors[0]
    assert errors[0].endswith("allowed: false for this model")


def test_quantize_refuses_a_tied_head_before_calibrating(tiny_model, tmp_path):
    src = tmp_path / "tied"
    shutil.copytree(tiny_model, src)
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, "tie_word_embeddings": True}))
    with pytest.raises(ValueError, match=r"^lm_head: true, but the output head of .* is tied"):
        get("gptq").quantize(str(src), tmp_path / "out", {**PARAMS, "lm_head": True}, RunContext(**CTX))


def test_quantized_head_is_counted_in_the_embedding_head_part(tiny_model, tmp_path):
    from gptqmodel.nn_modules.qlinear import BaseQuantLinear

    params = {**PARAMS, "lm_head": True}
    ctx = RunContext(**CTX)
    out = tmp_path / "gptq-head"
    with atomic_dir(out) as tmp:
        get("gptq").quantize(str(tiny_model), tmp, params, ctx)
        write_meta(tmp, {"method": "gptq-head", "backend": "gptq", "params": params})
    assert json.loads((out / "config.json").read_text())["quantization_config"]["lm_head"] is True
    model = load_model(str(out), ctx)[0]
    head, cfg = model.get_output_embeddings(), model.config
    assert isinstance(head, BaseQuantLinear) and head.bits == 8
    # 8-bit codes: one byte a weight, packed into int32 words
    assert head.qweight.numel() * head.qweight.element_size() == cfg.vocab_size * cfg.hidden_size
    split = weights_split_mb(model)
    assert split["body_mb"] + split["embedding_head_mb"] == model_weights_mb(model)
    table_mb = cfg.vocab_size * cfg.hidden_size * 4 / 2**20  # the input table stays float32
    # the head's codes, scales, zero points and group indices; its two lookup tables are views of one
    head_mb = sum({t.data_ptr(): t.numel() * t.element_size() for t in head.buffers()}.values()) / 2**20
    assert split["embedding_head_mb"] == pytest.approx(table_mb + head_mb, rel=1e-12)
    assert table_mb + table_mb / 4 < split["embedding_head_mb"] < table_mb + table_mb / 3
    # a decode step reads the quantized head whole and one row of the input table
    assert decode_weights_mb(model) == pytest.approx(model_weights_mb(model) - table_mb, rel=1e-12)
    with torch.inference_mode():
        assert torch.isfinite(model(torch.tensor([[1, 2, 3, 4]])).logits).all()
