"""The encoder model kind on a tiny BERT built here (WordPiece tokenizer trained locally): each
backend quantizes it or records the library's refusal, embeddings are compared with the unquantized
model's, the report's verdicts come from the records, and a model of the wrong kind stops the run."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml

from quantbench.encoder import checks, claims, embed, similarity
from quantbench.encoder.quantize import quantize
from tests.conftest import ROOT, copy_project, snakemake

SENTENCES = [
    "the cat sat on the mat", "a dog ran across the park", "she bought fresh bread at the bakery",
    "the river flooded the valley after the storm", "he plays the violin in an orchestra",
    "the committee approved the new budget", "children built a castle of sand on the beach",
    "the telescope revealed a distant galaxy", "a farmer harvested wheat in the autumn",
    "the train arrived late at the station", "the surgeon washed her hands before the operation",
    "snow covered the mountain village", "the chef seasoned the soup with pepper",
    "a storm knocked down the old oak tree", "the students read a poem aloud",
    "the market sells apples, pears and plums",
]
FP32 = {"name": "fp32", "backend": "none", "params": {"dtype": "float32"}}
NF4 = {"name": "bnb-nf4", "backend": "bnb",
       "params": {"bits": 4, "quant_type": "nf4", "double_quant": True, "compute_dtype": "auto"}}
GPTQ4 = {"name": "gptq-4bit-g32", "backend": "gptq",
         "params": {"bits": 4, "group_size": 32, "desc_act": False, "sym": True, "kernel": "torch",
                    "damp_percent": 0.05}}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 2-layer BERT (hidden 64) with a WordPiece tokenizer trained on the test sentences."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("bert") / "tiny-bert"
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(SENTENCES * 4, trainers.WordPieceTrainer(vocab_size=300, special_tokens=special,
                                                                     show_progress=False))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(out)
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def sentences_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sentences") / "sentences.jsonl"
    path.write_text("".join(json.dumps({"text": s}) + "\n" for s in SENTENCES))
    return path


def _embed(folder, method):
    model, tok, kernel = embed.load(str(folder), method, "cpu")
    return embed.embed(model, tok, SENTENCES, 8, 32, "cpu"), model, kernel


@pytest.fixture(scope="module")
def reference(tiny_bert, tmp_path_factory):
    dst = tmp_path_factory.mktemp("fp32") / "fp32"
    dst.mkdir()
    quantize(str(tiny_bert), dst, FP32, "cpu", [], 32)
    return _embed(dst, FP32)[0]


def test_unquantized_encoder_matches_itself(tiny_bert, reference):
    again, _, kernel = _embed(tiny_bert, FP32)
    metrics = similarity.compare(again, reference)
    assert kernel == "torch-float32"
    assert metrics["cosine_mean"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["nn_agreement"] == 1.0


def test_bnb_quantizes_the_encoder(tiny_bert, reference, tmp_path):
    import bitsandbytes as bnb

    dst = tmp_path / "bnb-nf4"
    dst.mkdir()
    extra = quantize(str(tiny_bert), dst, NF4, "cpu", [], 32)
    emb, model, kernel = _embed(dst, NF4)
    # every linear layer of the 2 transformer blocks (q, k, v, attention out, intermediate, out) and the pooler
    assert extra["quantized_linear_layers"] == 2 * 6 + 1
    assert sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules()) == 13
    assert kernel == "bnb-nf4-cpu"
    metrics = similarity.compare(emb, reference)
    # 4-bit weights move the embeddings, but not far
    assert 0.8 < metrics["cosine_mean"] < 1 - 1e-6


def test_gptqmodel_refuses_the_encoder_and_transformers_gptq_quantizes_it(tiny_bert, reference, tmp_path):
    dst = tmp_path / "gptq"
    dst.mkdir()
    extra = quantize(str(tiny_bert), dst, GPTQ4, "cpu", SENTENCES, 32)
    refusal = extra["gptqmodel_refusal"]
    assert refusal["raised_in"].startswith("gptqmodel/"), refusal
    assert "bert" in refusal["error"] and refusal["error_type"] == "ValueError" and "\n" not in refusal["error"]
    assert extra["route"] == "transformers-gptqconfig" and extra["block_name_to_quantize"] == "encoder.layer"
    emb, model, kernel = _embed_route(dst, GPTQ4, extra["route"])
    from gptqmodel.nn_modules.qlinear import BaseQuantLinear

    # the 6 linear layers of each of the 2 blocks; the pooler is outside the blocks
    assert sum(isinstance(m, BaseQuantLinear) for m in model.modules()) == 12 and kernel
    metrics = similarity.compare(emb, reference)
    # on random weights the residual stream is mostly the embeddings, so the change is small, but real
    assert 0.8 < metrics["cosine_mean"] < 1 - 1e-9


def _embed_route(folder, method, route):
    model, tok, kernel = embed.load(str(folder), method, "cpu", route)
    return embed.embed(model, tok, SENTENCES, 8, 32, "cpu"), model, kernel


def test_nearest_neighbour_agreement_sees_a_reordering():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(20, 8, generator=g)
    assert similarity.compare(ref * 3.0, ref)["nn_agreement"] == 1.0  # scale does not change cosines
    shuffled = ref[torch.randperm(20, generator=g)]
    metrics = similarity.compare(shuffled, ref)
    assert metrics["nn_agreement"] < 0.5 and metrics["cosine_mean"] < 0.9


def test_wordnet_examples_are_the_quoted_sentences_after_the_gloss(tmp_path):
    from quantbench.encoder.wordnet_examples import examples, is_wordnet_data_file

    data = tmp_path / "data.noun"
    data.write_text(
        "  1 This software and database is being provided\n"
        '02084071 05 n 02 dog 0 domestic_dog 0 001 @ 02083346 n 0000 | a member of the genus Canis; '
        '"the dog barked all night"; "dogs are loyal"\n'
        '02121808 05 n 01 cat 0 001 @ 02120997 n 0000 | feline mammal; "the cat purred on my lap"; '
        '"the dog barked all night"\n')
    # "dogs are loyal" is shorter than 15 characters; repeats are kept once
    assert examples(data) == ["the dog barked all night", "the cat purred on my lap"]
    assert is_wordnet_data_file(str(data)) and not is_wordnet_data_file(str(tmp_path / "s.jsonl"))


def _rows(*rows):
    cols = ["method", "backend", "outcome", "cosine_mean", "reason"]
    return pd.DataFrame([{**dict(zip(cols, r)), "route": None} for r in rows])


def _probes(*rows):
    cols = ["encoder", "modality", "architecture", "method", "backend", "outcome", "reason"]
    return pd.DataFrame([{**dict(zip(cols, r)), "route": None} for r in rows])


TEXT = {"name": "minilm", "architecture": "bert"}
VIT_REFUSES_GPTQ = [("vit", "vision", "ViT", "nf4", "bnb", "ok", ""),
                    ("vit", "vision", "ViT", "g4", "gptq", "unsupported", "refused at quantize (RuntimeError: no)")]


def _verdicts(df, probes=None):
    return {c["claim"]: c["verdict"] for c in claims.verdicts(df, 0.95, probes, TEXT)}


def test_verdicts_say_what_was_tested():
    ran = _rows(("fp32", "none", "ok", 1.0, ""), ("nf4", "bnb", "ok", 0.97, ""), ("g4", "gptq", "ok", 0.99, ""))
    # text alone: bitsandbytes holds on what was tried, and the words say no other modality was
    v = _verdicts(ran)
    assert v[claims.CLAIMS["bnb"]] == ("holds as far as tested: runs on a text encoder (minilm, bert: real weights, "
                                       "quality measured); no other modality tested")
    assert v[claims.CLAIMS["gptq"]].startswith("not tested beyond text: GPTQ quantized a text encoder (minilm")
    # with a vision encoder: bnb runs on both; GPTQ quantized text only and was refused on vision
    v = _verdicts(ran, _probes(*VIT_REFUSES_GPTQ))
    assert v[claims.CLAIMS["bnb"]] == ("holds as far as tested: runs on a text encoder (minilm, bert: real weights, "
                                       "quality measured) and a vision encoder (vit, ViT: random weights, runs only)")
    assert v[claims.CLAIMS["gptq"]] == ("holds as far as tested: GPTQ quantized a text encoder (minilm, bert: real "
                                        "weights, quality measured); refused on a vision encoder (vit, ViT: random "
                                        "weights, runs only)")
    # GPTQ running on an audio encoder refutes "only language models"; bnb refused there refutes "any modality"
    audio = _probes(("w2v", "audio", "Wav2Vec2", "nf4", "bnb", "unsupported", "refused at run (ValueError: x)"),
                    ("w2v", "audio", "Wav2Vec2", "g4", "gptq", "ok", ""))
    v = _verdicts(ran, audio)
    assert v[claims.CLAIMS["gptq"]] == ("refuted: GPTQ quantized an audio encoder (w2v, Wav2Vec2: random weights, "
                                        "runs only)")
    assert v[claims.CLAIMS["bnb"]].startswith("refuted: refused on an audio encoder (w2v")
    evidence = [c for c in claims.verdicts(ran, 0.95, audio, TEXT) if c["claim"] == claims.CLAIMS["bnb"]][0]["evidence"]
    assert "w2v: 0 of 1 bitsandbytes methods" in evidence and "w2v: refused at run (ValueError: x)" in evidence
    # quality is claimed for the text encoder only
    low = [c for c in claims.verdicts(_rows(("fp4", "bnb", "ok", 0.90, "")), 0.95, _probes(*VIT_REFUSES_GPTQ), TEXT)
           if "keep" in c["claim"]]
    assert low[0]["verdict"] == "refuted" and "fp4 0.9000" in low[0]["evidence"]
    assert "random weights, so no quality figure" in low[0]["evidence"]


def test_model_kind_mismatch_is_one_line_naming_config_json(tiny_bert, tiny_model):
    as_causal = {"model": {"name": "x", "source": "pretrained", "path": str(tiny_bert)}}
    errors = checks.kind_errors(as_causal)
    assert len(errors) == 1 and "\n" not in errors[0]
    assert str(tiny_bert / "config.json") in errors[0] and "expects a causal language model" in errors[0]
    as_encoder = {"model": {"name": "x", "kind": "encoder", "source": "pretrained", "path": str(tiny_model)}}
    errors = checks.kind_errors(as_encoder)
    assert len(errors) == 1 and str(tiny_model / "config.json") in errors[0] and "expects an encoder" in errors[0]
    assert checks.kind_errors({"model": {**as_encoder["model"], "path": str(tiny_bert)}}) == []


def test_encoder_dag_runs_and_reports(tiny_bert, sentences_file, tmp_path):
    work = copy_project(tmp_path / "proj")
    cfg = {"model": {"name": "tiny-bert", "kind": "encoder", "source": "pretrained", "path": str(tiny_bert)},
           "max_threads": 1,
           "encoder": {"sentences": str(sentences_file), "batch_size": 8, "max_length": 32, "repeats": 2,
                       "calibration_samples": 8, "random_encoders": {"vit": "config/architectures/vit-tiny.json"},
                       "random_batch_size": 2},
           "methods": {"fp32": {"backend": "none", "dtype": "float32"},
                       "bnb-nf4": {"backend": "bnb", "bits": 4, "quant_type": "nf4"},
                       "gptq-4bit-g32": {"backend": "gptq", "bits": 4, "group_size": 32, "kernel": "torch"}},
           "baseline": "fp32"}
    (work / "enc.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(work, "--configfile", "enc.yaml")
    out = work / "results/tiny-bert"
    table = pd.read_csv(out / "report/encoder.csv").set_index("method")
    assert table.loc["fp32", "cosine_mean"] == pytest.approx(1.0, abs=1e-6)
    assert table.loc["bnb-nf4", "outcome"] == "ok" and table.loc["bnb-nf4", "embed_ms_per_batch"] > 0
    # GPTQModel refuses BERT; transformers' GPTQConfig quantizes it once told the block name
    gptq = table.loc["gptq-4bit-g32"]
    assert gptq["outcome"] == "ok" and gptq["route"] == "transformers-gptqconfig"
    assert "GPTQModel refused" in gptq["reason"]
    # the vision encoder: bitsandbytes runs it, both GPTQ routes refuse it, each with its words
    vit = pd.read_csv(out / "report/encoder_modalities.csv").set_index("method")
    assert (vit.encoder == "vit").all() and (vit.modality == "vision").all()
    assert vit.loc["bnb-nf4", "outcome"] == "ok" and vit.loc["bnb-nf4", "quantized_linear_layers"] == 25
    assert vit.loc["gptq-4bit-g32", "outcome"] == "unsupported"
    assert "GPTQModel refused" in vit.loc["gptq-4bit-g32", "reason"]
    assert "We can only quantize pure text model" in vit.loc["gptq-4bit-g32", "reason"]
    verdict = pd.read_csv(out / "report/encoder_claims.csv").set_index("claim")["verdict"]
    assert verdict[claims.CLAIMS["bnb"]].startswith("holds as far as tested: runs on a text encoder (tiny-bert, bert")
    assert "and a vision encoder (vit, ViT: random weights, runs only)" in verdict[claims.CLAIMS["bnb"]]
    assert verdict[claims.CLAIMS["gptq"]].startswith("holds as far as tested: GPTQ quantized a text encoder")
    assert "refused on a vision encoder (vit" in verdict[claims.CLAIMS["gptq"]]
    md = (out / "report/encoder.md").read_text()
    assert "## Other modalities (random weights): runs or refuses" in md and "quantizing encoders: text, vision" in md


@pytest.mark.parametrize("kind", ["causal-lm", "encoder"])
def test_wrong_model_kind_stops_before_any_job(kind, tiny_bert, tiny_model, sentences_file, tmp_path):
    work = copy_project(tmp_path / "proj")
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["model"] = {"name": "wrong", "source": "pretrained", "path": str(tiny_bert)}
    cfg["data"] = {"source": "files", "calibration": str(sentences_file), "calibration_samples": 8}
    cfg.pop("finetune"), cfg.pop("recipes"), cfg.pop("evaluate", None)
    if kind == "encoder":
        cfg["model"].update(kind="encoder", path=str(tiny_model))
        cfg["encoder"] = {"sentences": str(sentences_file)}
        cfg = {k: cfg[k] for k in ("model", "encoder", "methods", "baseline")}
        # a mix reads the sensitivity stage, which the encoder workflow has not: only uniform methods here
        cfg["methods"] = {k: m for k, m in cfg["methods"].items() if "mix" not in m}
    (work / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "-n", "--configfile", "bad.yaml", check=False, timeout=300)
    text = proc.stdout + proc.stderr
    folder = tiny_bert if kind == "causal-lm" else tiny_model
    assert proc.returncode != 0
    lines = [line for line in text.splitlines() if str(folder / "config.json") in line]
    assert len(lines) == 1, text[-3000:]
    assert "model.path:" in lines[0] and ("expects an encoder" if kind == "encoder" else "expects a causal") in lines[0]
    assert not (work / "results/wrong").exists()


def test_encoder_workflow_plans_a_gpu_run_on_a_cpu_host(tiny_bert, sentences_file, tmp_path):
    """encoder.smk shares common.smk's setup (workflow/rules/setup.smk), so its CUDA policy is the
    causal-LM workflow's: a dry run plans a GPU setup on a CPU host (with a warning), a local run
    there is refused before any job starts; it used to stop with "no CUDA device" even when planning."""
    import os
    import subprocess
    import sys

    work = copy_project(tmp_path / "proj")
    cfg = {"model": {"name": "tiny-bert", "kind": "encoder", "source": "pretrained", "path": str(tiny_bert)},
           "device": "cuda", "encoder": {"sentences": str(sentences_file)},
           "methods": {"fp32": {"backend": "none", "dtype": "float32"}}, "baseline": "fp32"}
    (work / "enc.yaml").write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if k != "QUANTBENCH_ASSUME_CUDA"}
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "enc.yaml"]
    planned = subprocess.run([*cmd, "-n"], cwd=work, capture_output=True, text=True, timeout=300, env=env)
    assert planned.returncode == 0 and "This was a dry-run" in planned.stdout, planned.stderr[-2000:]
    assert "a dry run plans without one" in planned.stdout + planned.stderr
    refused = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300, env=env)
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "QUANTBENCH_ASSUME_CUDA" in said, said[-2000:]
    assert not (work / "results").exists() or not any((work / "results").rglob("*.json"))
