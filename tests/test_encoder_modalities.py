"""Encoders of other modalities: the ViT and the Wav2Vec2 of config/architectures, built with random
weights from transformers' own config classes, go through each scheme the encoder workflow has with
the real libraries: bitsandbytes quantizes, reloads and runs them; GPTQ is refused, and the record
says by which library, where and in what words."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, BertConfig

from quantbench.encoder import checks, loading, modality, probe, random_encoder
from tests.conftest import ROOT

ARCHITECTURES = {"vit": "config/architectures/vit-tiny.json", "wav2vec2": "config/architectures/wav2vec2-tiny.json"}
BNB = {"bits": 4, "quant_type": "nf4", "double_quant": True, "compute_dtype": "auto"}
METHODS = {
    "bnb-int8": {"backend": "bnb", "params": {**BNB, "bits": 8}},
    "bnb-nf4": {"backend": "bnb", "params": BNB},
    "bnb-fp4-nodq": {"backend": "bnb", "params": {**BNB, "quant_type": "fp4", "double_quant": False}},
    "gptq-4bit-g128": {"backend": "gptq", "params": {"bits": 4, "group_size": 128, "desc_act": False, "sym": True,
                                                     "kernel": "torch", "damp_percent": 0.05}},
}
# 4 blocks of q, k, v, attention output, intermediate and output dense, plus the ViT's pooler or
# Wav2Vec2's feature projection; the convolutions (patch embedding, feature encoder) stay as they are
QUANTIZED_LINEARS = 4 * 6 + 1


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    out = {}
    for name, arch in ARCHITECTURES.items():
        folder = tmp_path_factory.mktemp(name) / "model"
        stats = random_encoder.build(folder, ROOT / arch, seed=0)
        out[name] = (folder, stats)
    return out


def _run(folder, method_name):
    config = AutoConfig.from_pretrained(folder)
    calibration = [modality.synthetic_inputs(config, 1, 1 + i) for i in range(probe.CALIBRATION_ROWS)]
    return probe.run(str(folder), {"name": method_name, **METHODS[method_name]}, "cpu",
                     modality.synthetic_inputs(config, 2, 0), calibration, 128, warmup=0, repeats=1)


def test_the_modality_comes_from_transformers_main_input(encoders):
    assert encoders["vit"][1]["modality"] == "vision" and encoders["vit"][1]["main_input"] == "pixel_values"
    assert encoders["wav2vec2"][1]["modality"] == "audio" and encoders["wav2vec2"][1]["architecture"] == "Wav2Vec2"
    assert modality.of_config(BertConfig()) == "text"
    vit = modality.synthetic_inputs(AutoConfig.from_pretrained(encoders["vit"][0]), 3, 0)
    assert vit["pixel_values"].shape == (3, 3, 64, 64)


@pytest.mark.parametrize("encoder", list(ARCHITECTURES))
@pytest.mark.parametrize("method", ["bnb-int8", "bnb-nf4", "bnb-fp4-nodq"])
def test_bitsandbytes_quantizes_reloads_and_runs_each_modality(encoders, encoder, method):
    folder, _ = encoders[encoder]
    result = _run(folder, method)
    m = result["metrics"]
    assert result["outcome"] == "ok", result
    assert m["quantized_linear_layers"] == QUANTIZED_LINEARS
    quant_type = METHODS[method]["params"]["quant_type"]
    assert m["kernel"] == ("bnb-int8-cpu" if method == "bnb-int8" else f"bnb-{quant_type}-cpu")
    assert m["finite_outputs"]
    # random weights: a check that the quantized layers compute about what the float ones do, no more
    assert 0.9 < m["output_cosine_mean"] < 1 - 1e-9
    baseline, _ = loading.load_encoder(str(folder), probe.BASELINE, "cpu")
    from quantbench.memory import model_weights_mb

    assert m["weights_memory_mb"] < model_weights_mb(baseline)


@pytest.mark.parametrize("encoder", list(ARCHITECTURES))
def test_gptq_is_refused_with_each_librarys_words(encoders, encoder):
    folder, _ = encoders[encoder]
    result = _run(folder, "gptq-4bit-g128")
    assert result["outcome"] == "unsupported" and result["failed_at"] == "quantize"
    error = result["error"]
    # transformers' GPTQ quantizer refuses any model whose main input is not input_ids
    assert result["reason"] == "RuntimeError: We can only quantize pure text model."
    assert error["raised_in"] == "transformers/quantizers/quantizer_gptq.py"
    # GPTQModel refused first: its loader asks for a text tokenizer, which a vision or audio folder lacks
    gptqmodel = error["earlier_refusals"]["gptqmodel"]
    assert any(f.startswith("gptqmodel/models/loader.py") for f in gptqmodel["library_frames"]), gptqmodel
    assert any("load_hf_tokenizer" in f for f in gptqmodel["library_frames"]), gptqmodel


def test_gptqmodel_given_a_tokenizer_still_builds_a_causal_lm(encoders, tmp_path):
    """The tokenizer is not GPTQModel's only objection: with one in the folder, its loader builds the
    model through AutoModelForCausalLM, which has no vision class."""
    import shutil

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from quantbench import gptqmodel_run
    from quantbench.backends.gptq import quantize_config

    folder = tmp_path / "vit-with-tokenizer"
    shutil.copytree(encoders["vit"][0], folder)
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["a picture of a cat"], trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]"]))
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(folder)
    rows = [modality.synthetic_inputs(AutoConfig.from_pretrained(folder), 1, i) for i in range(probe.CALIBRATION_ROWS)]
    with pytest.raises(ValueError, match="Unrecognized configuration class.*ViTConfig.*AutoModelForCausalLM"):
        gptqmodel_run.quantized(str(folder), quantize_config(METHODS["gptq-4bit-g128"]["params"]), rows, "cpu", 128)


def test_random_encoder_problems_are_one_line_each(tmp_path):
    text = tmp_path / "bert.json"
    text.write_text(json.dumps({"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 1}))
    unknown = tmp_path / "nope.json"
    unknown.write_text(json.dumps({"model_type": "no-such-model"}))
    cfg = {"encoder": {"random_encoders": {"vit": ARCHITECTURES["vit"], "bert": str(text), "nope": str(unknown),
                                           "gone": "config/architectures/none.json", "bad/name": ARCHITECTURES["vit"]}}}
    errors = checks.random_encoder_errors(cfg, str(ROOT))
    assert len(errors) == 4 and all("\n" not in e for e in errors), errors
    said = dict(e.split(": ", 1) for e in errors)
    assert "a text model" in said["encoder.random_encoders.bert"]
    assert "not a transformers architecture file" in said["encoder.random_encoders.nope"]
    assert "does not exist" in said["encoder.random_encoders.gone"]
    assert "not a folder name" in said["encoder.random_encoders.bad/name"]


def test_synthetic_inputs_are_reproducible(encoders):
    config = AutoConfig.from_pretrained(encoders["wav2vec2"][0])
    a, b = (modality.synthetic_inputs(config, 2, 7)["input_values"] for _ in range(2))
    assert a.shape == (2, modality.AUDIO_SAMPLES) and torch.equal(a, b)
