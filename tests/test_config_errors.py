"""Bad configs stop before any job runs, each with one message naming the key, the value and what
is allowed: unit-level on validation.load (schema, semantics, files), and through real Snakemake."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml

from quantbench import config_messages, validation
from tests.conftest import ROOT, copy_project, snakemake
from tests.gguf_writer import write_tiny_llama

DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def _set(path: str, value):
    """A mutation setting one dotted key (`a.b[0].c`); value DELETE removes it."""
    def mutate(cfg, tmp):
        *parents, last = _parts(path)
        node = cfg
        for p in parents:
            node = node[p]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value(tmp) if callable(value) else value
    return mutate


def _parts(path: str) -> list:
    out = []
    for piece in path.replace("]", "").split("."):
        name, *idx = piece.split("[")
        out += [name] + [int(i) for i in idx]
    return out


DELETE = object()


def _files_source(**files):
    """data.source: files with JSON lines written into the working directory."""
    def mutate(cfg, tmp):
        cfg["data"] = {"source": "files", "calibration_samples": 16, "calibration_seq_len": 64}
        for kind, rows in files.items():
            if rows is None:
                continue
            (tmp / f"{kind}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            cfg["data"][kind] = f"{kind}.jsonl"
    return mutate


TEXTS = [{"text": f"text number {i}"} for i in range(32)]
PAIRS = [{"instruction": f"q{i}", "response": f"a{i}"} for i in range(32)]


def _pretrained(files: list[str] | None, path: str = "local-model"):
    """model.source: pretrained with a local folder holding only `files` (None: no folder), and data
    from files (the toy data is built only for toy and random models)."""
    def mutate(cfg, tmp):
        cfg["model"] = {"name": "local", "source": "pretrained", "path": path}
        _files_source(calibration=TEXTS, finetune=PAIRS, heldout=TEXTS)(cfg, tmp)
        if files is not None:
            (tmp / path).mkdir()
            for f in files:
                (tmp / path / f).write_text("{}")
    return mutate


def _both(*mutations):
    def mutate(cfg, tmp):
        for m in mutations:
            m(cfg, tmp)
    return mutate


MARLIN = {"backend": "gptq", "bits": 4, "group_size": 32, "kernel": "marlin"}
AWQ = {"backend": "awq", "bits": 4, "group_size": 32}
AWQ_FUSED = {**AWQ, "kernel": "torch_fused"}  # CPU only
TORCHAO_INT4 = {"backend": "torchao", "scheme": "int4-weight-only", "group_size": 64}

# id -> (mutation of the default config, substrings the one message must contain: key, value, allowed)
CASES = {
    # methods and backends
    "unknown backend": (_set("methods.bnb-int8.backend", "autoawq"),
                        ["methods.bnb-int8.backend", "'autoawq'", "allowed: none, bnb, gptq, torchao, hqq, awq"]),
    "bnb bits": (_set("methods.bnb-int8.bits", 3), ["methods.bnb-int8.bits", "3", "allowed: 4, 8"]),
    "gptq bits": (_set("methods.gptq-8bit-g32.bits", 5), ["methods.gptq-8bit-g32.bits", "5", "allowed: 2, 3, 4, 8"]),
    "bits as a string": (_set("methods.gptq-8bit-g32.bits", "8"),
                         ["methods.gptq-8bit-g32.bits", "'8'", "must be a number, not a string", "allowed: 2, 3, 4, 8"]),
    "group size as a string": (_set("methods.gptq-8bit-g32.group_size", "32"),
                               ["methods.gptq-8bit-g32.group_size", "'32'", "must be a number, not a string",
                                "allowed: an integer"]),
    "kernel bits": (_set("methods.gptq-marlin-3bit", {**MARLIN, "bits": 3}),
                    ["methods.gptq-marlin-3bit.bits", "3", "kernel 'marlin'", "allowed: 4, 8"]),
    "unknown kernel": (_set("methods.gptq-8bit-g32.kernel", "exllama"),
                       ["methods.gptq-8bit-g32.kernel", "'exllama'", "allowed: torch, triton, marlin, exllama_v2"]),
    "quant type": (_set("methods.bnb-fp4.quant_type", "int4"), ["methods.bnb-fp4.quant_type", "'int4'", "allowed: nf4, fp4"]),
    "unknown method parameter": (_set("methods.bnb-int8.group_size", 64),
                                 ["methods.bnb-int8.group_size", "unknown parameter", "allowed: bits, quant_type"]),
    "group size does not divide": (_set("methods.gptq-8bit-g32.group_size", 48),
                                   ["methods.gptq-8bit-g32.group_size", "48", "[512]", "divisor of 192, 512 or -1"]),
    "group size zero": (_set("methods.gptq-8bit-g32.group_size", 0), ["methods.gptq-8bit-g32.group_size", "0", "or -1"]),
    "hqq bits": (_set("methods.hqq", {"backend": "hqq", "bits": 7, "group_size": 64}),
                 ["methods.hqq.bits", "7", "allowed: 1, 1.58, 2, 3, 4, 5, 6, 8"]),
    "hqq group size does not divide": (_set("methods.hqq", {"backend": "hqq", "bits": 4, "group_size": 96}),
                                       ["methods.hqq.group_size", "96", "[512]", "divisor of 192, 512 or -1"]),
    "hqq group size not a multiple of 8": (_set("methods.hqq", {"backend": "hqq", "bits": 4, "group_size": 4}),
                                           ["methods.hqq.group_size", "4", "multiples of 8"]),
    "awq group size does not divide": (_set("methods.awq", {**AWQ, "group_size": 128}),
                                       ["methods.awq.group_size", "128", "[192]", "divisor of 192, 512 or -1",
                                        "AWQ kernel 'torch'"]),
    "awq group size of the kernel": (_set("methods.awq", {**AWQ, "group_size": 48}),
                                     ["methods.awq.group_size", "48", "allowed: 16, 32, 64, 128", "AWQ kernel 'torch'"]),
    "awq bits": (_set("methods.awq", {**AWQ, "bits": 8}), ["methods.awq.bits", "8", "allowed: 2, 3, 4"]),
    "awq kernel bits": (_set("methods.awq", {**AWQ, "bits": 3, "kernel": "gemm"}),
                        ["methods.awq.bits", "3", "kernel 'gemm'", "allowed: 4"]),
    "awq zero_point type": (_set("methods.awq", {**AWQ, "zero_point": "yes"}),
                            ["methods.awq.zero_point", "'yes'", "allowed: True, False"]),
    "all-linear on an AWQ base": (_both(_set("methods.awq", AWQ), _set("finetune.bases", ["awq"]),
                                        _set("recipes", []), _set("finetune.lora.target_modules", "all-linear")),
                                  ["finetune.lora.target_modules", "'all-linear'", "awq", "allowed: the layer names"]),
    "torchao scheme": (_set("methods.torchao", {"backend": "torchao", "scheme": "int4"}),
                       ["methods.torchao.scheme", "'int4'", "allowed: int8-weight-only, int8-dynamic, int4-weight-only"]),
    "torchao int8 with groups": (_set("methods.torchao", {"backend": "torchao", "scheme": "int8-dynamic", "group_size": 64}),
                                 ["methods.torchao.group_size", "64", "'int8-dynamic'", "allowed: -1"]),
    "torchao int4 group size": (_set("methods.torchao-int4", {**TORCHAO_INT4, "group_size": 96}),
                                ["methods.torchao-int4.group_size", "96", "allowed: 32, 64, 128, 256"]),
    "finetune on torchao int4": (_both(_set("methods.torchao-int4", TORCHAO_INT4), _set("finetune.bases[2]", "torchao-int4")),
                                 ["finetune.bases[2]", "'torchao-int4'", "int8 weights only", "allowed: fp32"]),
    # serving engines (benchmark.engines)
    "unknown engine": (_set("benchmark.engines", ["builtin", "tgi"]),
                       ["benchmark.engines[1]", '"tgi" is not allowed', "allowed: builtin, vllm, llamacpp"]),
    "engines without builtin": (_set("benchmark.engines", ["llamacpp"]),
                                ["benchmark.engines", "leaves out 'builtin'", "a list that includes 'builtin'"]),
    "vllm on the cpu": (_set("benchmark.engines", ["builtin", "vllm"]),
                        ["benchmark.engines[1]", "'vllm'", "device is 'cpu'", "allowed with device cpu: builtin, llamacpp"]),
    "method name": (_set("methods.Bad+Name", {"backend": "none"}), ["methods.Bad+Name", "lower-case letters"]),
    # a name is a folder and a command-line word: '..' and '-gptq' were told only which characters they use
    "method name '..'": (lambda cfg, tmp: cfg["methods"].update({"..": {"backend": "none"}}),
                         ["methods..", "'..' is not a method name", "starts with a lower-case letter or digit",
                          "'.', '_' and '-'", "not '.' or '..'"]),
    "method name starting with a dash": (_set("methods.-gptq", {"backend": "gptq", "bits": 4, "group_size": 32}),
                                         ["methods.-gptq", "'-gptq' is not a method name",
                                          "starts with a lower-case letter or digit"]),
    "missing bits": (_set("methods.bnb-int8", {"backend": "bnb"}), ["methods.bnb-int8.bits", "missing", "allowed: 4, 8"]),
    "missing torchao scheme": (_set("methods.ao", {"backend": "torchao"}),
                               ["methods.ao.scheme", "missing", "allowed: int8-weight-only, int8-dynamic"]),
    # references between keys
    "unknown baseline": (_set("baseline", "fp16"), ["baseline", "'fp16'", "allowed: fp32, bnb-int8"]),
    "quantized baseline": (_set("baseline", "bnb-int8"), ["baseline", "'bnb-int8'", "backend: none"]),
    "unknown finetune base": (_set("finetune.bases[2]", "gptq-4bit"),
                              ["finetune.bases[2]", "'gptq-4bit'", "allowed: fp32, bnb-int8"]),
    "unknown recipe base": (_set("recipes[0].finetune_on", "qlora"), ["recipes[0].finetune_on", "'qlora'", "allowed: fp32"]),
    "recipe requantize not gptq": (_set("recipes[0].requantize", "bnb-int8"),
                                   ["recipes[0].requantize", "'bnb-int8'", "allowed: gptq-2bit-g32"]),
    "merge dequant on gptq": (_set("recipes[0]", {"finetune_on": "gptq-4bit-g32", "merge_into": ["dequant"]}),
                              ["recipes[0].merge_into", "'dequant'", "can dequantize (bnb, torchao, hqq, awq)", "'gptq'"]),
    "finetune steps missing": (_set("finetune.steps", DELETE), ["finetune.steps", "missing", "finetune.bases"]),
    "lora targets missing": (_set("finetune.lora.target_modules", DELETE), ["finetune.lora.target_modules", "missing", "q_proj"]),
    # hardware
    "cuda-only method, policy error": (_both(_set("methods.gptq-marlin", MARLIN), _set("unsupported_methods", "error")),
                                       ["methods.gptq-marlin", "'marlin' runs on CUDA only", "'cpu'", "unsupported_methods: skip"]),
    "torchao int4 on the cpu, policy error": (
        _both(_set("methods.torchao-int4", TORCHAO_INT4), _set("unsupported_methods", "error")),
        ["methods.torchao-int4", "'int4-weight-only' runs on CUDA only", "'cpu'",
         "allowed with device cpu: scheme int8-weight-only, int8-dynamic or float8-weight-only", "unsupported_methods: skip"]),
    "cuda device without cuda": (_set("device", "cuda"), ["device", "'cuda'", "allowed here: cpu", "QUANTBENCH_ASSUME_CUDA"]),
    # schema: types, ranges, enums, unknown and missing keys
    "zero eval batch size": (_set("evaluate.batch_size", 0), ["evaluate.batch_size", "0", "allowed: >= 1"]),
    "negative generate batch size": (_set("benchmark.generate.batch_sizes[1]", -4),
                                     ["benchmark.generate.batch_sizes[1]", "-4", "allowed: >= 1"]),
    "zero finetune batch size": (_set("finetune.batch_size", 0), ["finetune.batch_size", "0", "allowed: >= 1"]),
    "zero toy train batch size": (_set("model.toy.train_batch_size", 0), ["model.toy.train_batch_size", "0", ">= 1"]),
    "too few calibration samples": (_set("data.calibration_samples", 4),
                                    ["data.calibration_samples", "4", "allowed: >= 8", "Hessian"]),
    "empty prefill grid": (_set("benchmark.prefill.batch_sizes", []), ["benchmark.prefill.batch_sizes", "at least 1"]),
    "device enum": (_set("device", "gpu"), ["device", '"gpu"', "allowed: cpu, cuda"]),
    "policy enum": (_set("unsupported_methods", "ignore"), ["unsupported_methods", '"ignore"', "allowed: skip, error"]),
    "suite enum": (_set("evaluate.suite", "mmlu"), ["evaluate.suite", '"mmlu"', "allowed: toy, wordnet, leaderboard-v1"]),
    "seed type": (_set("seed", "abc"), ["seed", '"abc"', "must be an integer"]),
    "learning rate zero": (_set("finetune.learning_rate", 0), ["finetune.learning_rate", "0", "allowed: > 0"]),
    "model name pattern": (_set("model.name", "my model"), ["model.name", '"my model"', "letters, digits"]),
    "unknown top-level key": (_set("seeds", 3), ["seeds", "unknown key", "allowed in the top level", "seed"]),
    "unknown nested key": (_set("finetune.epochs", 3), ["finetune.epochs", "unknown key", "allowed in finetune", "steps"]),
    "missing baseline": (_set("baseline", DELETE), ["baseline", "missing", "the top level"]),
    "missing toy size": (_set("model.toy.hidden_size", DELETE), ["model.toy.hidden_size", "missing", "model.toy"]),
    "missing benchmark grid": (_set("benchmark.generate", DELETE), ["benchmark.generate", "missing"]),
    "toy heads": (_set("model.toy.num_attention_heads", 5), ["model.toy.hidden_size", "192", "num_attention_heads 5"]),
    # model and data files
    "pretrained without path": (_pretrained(None, path=""), ["model.path", "missing", "hub id"]),
    "local model missing": (_pretrained(None, path="./models/llama"), ["model.path", "'./models/llama'", "does not exist"]),
    "local model without config.json": (_pretrained(["model.safetensors", "tokenizer.json"]),
                                        ["model.path", "'local-model'", "no config.json"]),
    "local model without tokenizer": (_pretrained(["config.json", "model.safetensors"]),
                                      ["model.path", "'local-model'", "no tokenizer files", "tokenizer.json"]),
    "random without architecture": (_set("model", {"name": "r", "source": "random"}), ["model.architecture", "missing"]),
    "random architecture missing": (_set("model", {"name": "r", "source": "random", "architecture": "config/nope.json"}),
                                    ["model.architecture", "'config/nope.json'", "does not exist"]),
    "calibration file missing": (_both(_files_source(finetune=PAIRS, heldout=TEXTS), _set("data.calibration", "calib.jsonl")),
                                 ["data.calibration", "'calib.jsonl'", "does not exist"]),
    "calibration file missing for AWQ": (_both(_files_source(finetune=PAIRS, heldout=TEXTS),
                                               _set("methods", {"fp32": {"backend": "none", "dtype": "float32"},
                                                                "awq": AWQ}),
                                               _set("finetune.bases", ["fp32"]), _set("recipes", []),
                                               _set("sensitivity", DELETE)),
                                         ["data.calibration", "missing", "a method that calibrates (GPTQ, AWQ)"]),
    "calibration file empty": (_files_source(calibration=[], finetune=PAIRS, heldout=TEXTS),
                               ["data.calibration", "'calibration.jsonl'", "the file is empty"]),
    "calibration set too small": (_files_source(calibration=TEXTS[:3], finetune=PAIRS, heldout=TEXTS),
                                  ["data.calibration", "has 3 text(s)", "at least 8"]),
    "finetune data missing": (_files_source(calibration=TEXTS, finetune=None, heldout=TEXTS),
                              ["data.finetune", "missing", "finetune.bases", "JSON lines path"]),
    "finetune data without pairs": (_files_source(calibration=TEXTS, finetune=TEXTS, heldout=TEXTS),
                                    ["data.finetune", "'finetune.jsonl'", "no rows with instruction/response pairs"]),
    "dataset without path": (_both(_files_source(calibration=TEXTS, finetune=PAIRS, heldout=TEXTS),
                                   _set("data.heldout", {"name": "wikitext-2-raw-v1"})), ["data.heldout.path", "missing"]),
    # what a job would have failed on (issue 12)
    "damp_percent above 1": (_set("methods.gptq-8bit-g32.damp_percent", 1.5),
                             ["methods.gptq-8bit-g32.damp_percent", "1.5", "allowed: 0 < damp_percent < 1"]),
    "damp_percent zero": (_set("methods.gptq-8bit-g32.damp_percent", 0.0),
                          ["methods.gptq-8bit-g32.damp_percent", "0.0", "allowed: 0 < damp_percent < 1"]),
    "lora target misspelt": (_set("finetune.lora.target_modules", ["qproj"]),
                             ["finetune.lora.target_modules[0]", "'qproj'", "did you mean 'q_proj'", "allowed: q_proj"]),
    "lora target regex matches nothing": (_set("finetune.lora.target_modules", ".*attn_q"),
                                          ["finetune.lora.target_modules", "'.*attn_q'", "matches no module"]),
    "all-linear on a GPTQ base": (_set("finetune.lora.target_modules", "all-linear"),
                                  ["finetune.lora.target_modules", "'all-linear'", "gptq-4bit-g32", "allowed: the layer names"]),
    "calibration longer than the context": (_set("data.calibration_seq_len", 4096),
                                            ["data.calibration_seq_len", "4096", "max_position_embeddings", "at most"]),
    "generation longer than the context": (_set("benchmark.generate.new_tokens[1]", 1000),
                                           ["benchmark.generate.new_tokens[1]", "+ 1000 new tokens", "at most"]),
    "more calibration samples than the toy data": (_set("data.calibration_samples", 10**12),
                                                   ["data.calibration_samples", str(10**12), "at most"]),
    "misspelt lora key": (_set("finetune.lora.rank", 4), ["finetune.lora.rank", "unknown key", "did you mean 'r'"]),
    "misspelt generate key": (_set("benchmark.generate.use_cahce", [True]),
                              ["benchmark.generate.use_cahce", "unknown key", "did you mean 'use_cache'"]),
    "misspelt prefill key": (_set("benchmark.prefill.batch_size", 1),
                             ["benchmark.prefill.batch_size", "unknown key", "did you mean 'batch_sizes'"]),
    "model path with the toy source": (_set("model.path", "some/model"), ["model.path", "model.source is 'toy'", "remove it"]),
    "calibration file with toy data": (_set("data.calibration", "calib.jsonl"),
                                       ["data.calibration", "data.source is 'toy'", "data.source: files"]),
    "method named base": (_set("methods.base", {"backend": "bnb", "bits": 8}), ["methods.base", "'base' is reserved"]),
    # YAML reads an unquoted `8:` as the number 8
    "numeric method name": (lambda cfg, tmp: cfg["methods"].update({8: {"backend": "bnb", "bits": 8}}),
                            ["methods.8", "is a number", "quote it"]),
    "unknown gguf type": (_both(_pretrained(["config.json", "model.safetensors", "tokenizer.json"]),
                                _set("methods.gguf-q4", {"backend": "gguf", "type": "Q4_K_X"})),
                          ["methods.gguf-q4.type", "'Q4_K_X'", "allowed: F32, F16, BF16, Q8_0"]),
    "gguf of the toy model": (_set("methods.gguf-q8", {"backend": "gguf", "type": "Q8_0"}),
                              ["methods.gguf-q8", "toy model's locally trained tokenizer", "model.source: pretrained or gguf"]),
    "requantize to an unquantized method": (_set("recipes[0].requantize", ["gptq-4bit-g32", "fp32"]),
                                            ["recipes[0].requantize", "'fp32'", "GPTQ, torchao or GGUF method"]),
    # someone trimming SmolLM2 to two layers for a quick test got the whole model, hours later
    "num_hidden_layers with a pretrained model": (
        _both(_pretrained(["config.json", "model.safetensors", "tokenizer.json"]), _set("model.num_hidden_layers", 2)),
        ["model.num_hidden_layers", "'pretrained'", "truncates only a random architecture", "model.source: random"]),
    # the build job stopped on this, after the jobs before it
    "num_hidden_layers above the architecture's": (
        _set("model", {"name": "r", "source": "random", "architecture": "config/architectures/tiny-llama.json",
                       "num_hidden_layers": 6}),
        ["model.num_hidden_layers", "6", "more than the 4 layers of config/architectures/tiny-llama.json",
         "allowed: 1 to 4"]),
    # keys a loaded model ignores were silently ignored
    "toy block with a pretrained model": (
        _both(_pretrained(["config.json", "model.safetensors", "tokenizer.json"]), _set("model.toy", DEFAULT["model"]["toy"])),
        ["model.toy", "model.source is 'pretrained'", "loads the model and its architecture from model.path",
         "remove it, or set model.source: toy"]),
    "architecture with a gguf model": (
        _both(_pretrained(None), _set("model", {"name": "g", "source": "gguf", "path": "m.gguf",
                                                "architecture": "config/architectures/tiny-llama.json"}),
              lambda cfg, tmp: write_tiny_llama(tmp / "m.gguf")),
        ["model.architecture", "model.source is 'gguf'", "from the GGUF file", "remove it, or set model.source: random"]),
    "toy block with a random architecture": (
        _set("model", {"name": "r", "source": "random", "architecture": "config/architectures/tiny-llama.json",
                       "toy": DEFAULT["model"]["toy"]}),
        ["model.toy", "model.source is 'random'", "builds the model from model.architecture"]),
    "num_hidden_layers with the toy model": (_set("model.num_hidden_layers", 2),
                                             ["model.num_hidden_layers", "model.toy.num_hidden_layers"]),
    # sensitivity and mixed precision (issue 23)
    "mix budget below the low width": (_set("methods.gptq-mix34-measured.mix.budget_bits", 3.0),
                                       ["methods.gptq-mix34-measured.mix.budget_bits", "3.0", "above 3.594"]),
    "mix on a backend without per-module settings": (
        _set("methods.bnb-mix", {"backend": "bnb", "bits": 4, "mix": {"high_bits": 8, "rule": "kquant"}}),
        ["methods.bnb-mix.mix", "'bnb' has no per-module settings", "allowed: backend gptq"]),
    "sensitivity kind that matches no layer": (_both(_set("methods.gptq-mix34-measured", DELETE),
                                                     _set("sensitivity.kinds", ["q_proj", "qkv_proj"])),
                                               ["sensitivity.kinds[1]", "'qkv_proj'", "allowed: q_proj, k_proj"]),
    "sensitivity method that is not one": (_set("sensitivity.methods", ["gptq-3bit-g32", "gptq-4bit-g23"]),
                                           ["sensitivity.methods[1]", "'gptq-4bit-g23'", "gptq-4bit-g32"]),
    "mix unit that is not measured": (_set("sensitivity.groups", ["block", "projection"]),
                                      ["methods.gptq-mix34-measured.mix.unit", "'cell' is not measured",
                                       "allowed: block, projection"]),
    "mix without a measurement at its high width": (
        _set("sensitivity.methods", ["gptq-3bit-g32", "gptq-8bit-g32"]),
        ["methods.gptq-mix34-measured.mix", "GPTQ at 4 bits", "add one to sensitivity.methods"]),
    "mix measured by itself": (_set("sensitivity.methods", ["gptq-3bit-g32", "gptq-4bit-g32", "gptq-mix34-measured"]),
                               ["sensitivity.methods[2]", "allocates its bits from the sensitivity records"]),
    "toy data with a real model": (_both(_pretrained(["config.json", "model.safetensors", "tokenizer.json"]),
                                         _set("data", {"source": "toy"})),
                                   ["data.source", "'toy'", "'pretrained'", "allowed with this model: files, wordnet"]),
}


def _errors(config: dict, tmp_path: Path, cuda: bool = False) -> list[str]:
    with pytest.raises(config_messages.ConfigError) as info:
        validation.load(config, cuda_available=cuda, workdir=str(tmp_path), basedir=str(ROOT))
    return info.value.errors


def test_enough_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", list(CASES))
def test_bad_config_gives_one_clear_message(case, tmp_path):
    mutate, expected = CASES[case]
    config = copy.deepcopy(DEFAULT)
    mutate(config, tmp_path)
    errors = _errors(config, tmp_path)
    assert len(errors) == 1, errors
    for part in expected:
        assert part in errors[0], (part, errors[0])
    key = expected[0]
    assert errors[0].startswith(f"{key}:") or errors[0].startswith(f"{key}."), errors[0]
    assert "\n" not in errors[0]


def test_default_config_is_valid_and_files_source_passes(tmp_path):
    exp = validation.load(copy.deepcopy(DEFAULT), cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    assert exp.notes == [] and exp.skipped == {}
    config = copy.deepcopy(DEFAULT)
    _files_source(calibration=TEXTS, finetune=PAIRS, heldout=TEXTS)(config, tmp_path)
    exp = validation.load(config, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    assert exp.notes == []  # 32 texts >= calibration_samples 16


def test_fewer_texts_than_samples_is_a_note_not_an_error(tmp_path):
    config = copy.deepcopy(DEFAULT)
    _files_source(calibration=TEXTS[:10], finetune=PAIRS, heldout=TEXTS)(config, tmp_path)
    exp = validation.load(config, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    assert any("has 10 texts, fewer than data.calibration_samples (16)" in n for n in exp.notes)


def test_uncached_hub_id_stops_an_offline_run_and_is_noted_online(tmp_path, monkeypatch):
    """An uncached hub id with offline: true was only a warning; the first job then failed."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    config = copy.deepcopy(DEFAULT)
    _pretrained(None, path="meta-llama/Llama-2-7b-hf")(config, tmp_path)
    errors = _errors(config, tmp_path)
    assert len(errors) == 1 and errors[0].startswith("model.path: 'meta-llama/Llama-2-7b-hf' is a hub id that is "
                                                     "not in the Hugging Face cache here"), errors
    assert "offline is true" in errors[0] and "allowed: a local model folder, a cached hub id" in errors[0]
    exp = validation.load({**config, "offline": False}, cuda_available=False, workdir=str(tmp_path),
                          basedir=str(ROOT))
    assert any("hub id and cannot be checked" in n for n in exp.notes), exp.notes


def test_cuda_graph_modes_on_the_cpu_are_refused_or_noted(tmp_path):
    """config/random-tiny.yaml's `compiled` on device cpu was dropped with a job-log warning and an ok record."""
    config = copy.deepcopy(DEFAULT)
    config["benchmark"]["generate"]["modes"] = ["eager", "compiled"]
    config["benchmark"]["generate"]["adapters"] = {"modes": ["fused"]}
    errors = _errors({**config, "unsupported_methods": "error"}, tmp_path)
    assert errors == ["benchmark.generate.modes[1]: 'compiled' replays CUDA graphs, and device is 'cpu'; allowed "
                      "with device cpu: eager, static (or set unsupported_methods: skip to record its cells as "
                      "unsupported)", errors[1]]
    assert errors[1].startswith("benchmark.generate.adapters.modes[0]: 'fused'")
    exp = validation.load(config, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    assert exp.notes == ["benchmark.generate.modes[1]: 'compiled' replays CUDA graphs: its cells are recorded as "
                         "unsupported on device 'cpu'",
                         "benchmark.generate.adapters.modes[0]: 'fused' replays CUDA graphs: its cells are recorded "
                         "as unsupported on device 'cpu'"]
    on_gpu = validation.load({**config, "device": "cuda"}, cuda_available=True, workdir=str(tmp_path),
                             basedir=str(ROOT))
    assert on_gpu.notes == []


def test_cuda_only_method_is_skipped_under_the_skip_policy(tmp_path):
    config = copy.deepcopy(DEFAULT)
    config["methods"]["gptq-marlin"] = MARLIN
    exp = validation.load(config, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    assert exp.skipped == {"gptq-marlin": "GPTQ kernel 'marlin' runs on CUDA only"}
    assert "gptq-marlin" not in [v.name for v in exp.variants]
    with_cuda = validation.load({**config, "device": "cuda"}, cuda_available=True, workdir=str(tmp_path),
                                basedir=str(ROOT))
    assert with_cuda.skipped == {}


def test_cpu_only_kernel_on_cuda_is_skipped_or_stops_the_run(tmp_path):
    config = copy.deepcopy(DEFAULT)
    config["methods"]["awq-fused"] = AWQ_FUSED
    config["device"] = "cuda"
    exp = validation.load(config, cuda_available=True, workdir=str(tmp_path), basedir=str(ROOT))
    assert list(exp.skipped) == ["awq-fused"] and "runs on the CPU only" in exp.skipped["awq-fused"]
    errors = _errors({**config, "unsupported_methods": "error"}, tmp_path, cuda=True)
    assert len(errors) == 1, errors
    assert errors[0].startswith("methods.awq-fused: AWQ kernel 'torch_fused' runs on the CPU only"), errors
    assert "device is 'cuda'; allowed with device cuda: kernel torch, gemm, marlin or exllama_v2" in errors[0], errors
    assert validation.load({**config, "device": "cpu"}, cuda_available=False, workdir=str(tmp_path),
                           basedir=str(ROOT)).skipped == {}


def test_every_problem_is_listed_once(tmp_path):
    config = copy.deepcopy(DEFAULT)
    config["methods"]["bnb-int8"]["bits"] = 3
    config["baseline"] = "fp16"
    config["finetune"]["bases"].append("nope")
    errors = _errors(config, tmp_path)
    assert [e.split(":")[0] for e in errors] == ["methods.bnb-int8.bits", "baseline", "finetune.bases[3]"]
    assert str(config_messages.ConfigError(errors)).count("\n  - ") == 3


def test_schema_problems_are_all_listed_before_semantics(tmp_path):
    config = copy.deepcopy(DEFAULT)
    config["evaluate"]["batch_size"] = -1
    config["benchmark"]["repeats"] = 0
    config["methods"]["bnb-int8"]["bits"] = 3  # semantic: reported once the shape is right
    errors = _errors(config, tmp_path)
    assert [e.split(":")[0] for e in errors] == ["benchmark.repeats", "evaluate.batch_size"]


# --- through real Snakemake: the message reaches the user, and nothing runs -------------------------

def _bad_project(tmp_path: Path, mutate) -> Path:
    (tmp_path / "project").mkdir()
    work = copy_project(tmp_path / "project")
    config = copy.deepcopy(DEFAULT)
    mutate(config, work)
    (work / "bad.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return work


def _assert_stopped_before_any_job(proc, work: Path, line: str):
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "invalid config:\n  - " + line in out, out[-3000:]
    assert "ValidationError" not in out and "Failed validating" not in out  # not jsonschema's dump
    assert "Job stats" not in out and "rule " not in out
    assert not (work / "results").exists()


def test_schema_error_reaches_the_user_through_a_dry_run(tmp_path):
    work = _bad_project(tmp_path, _set("benchmark.prefill.batch_sizes", [1, 0]))
    proc = snakemake(work, "-n", "--configfile", "bad.yaml", check=False, timeout=300)
    _assert_stopped_before_any_job(proc, work, "benchmark.prefill.batch_sizes[1]: 0 is out of range; allowed: >= 1")


def test_semantic_error_stops_a_real_run_before_any_job(tmp_path):
    work = _bad_project(tmp_path, _set("methods.gptq-8bit-g32.bits", 5))
    proc = snakemake(work, "--configfile", "bad.yaml", check=False, timeout=300)
    _assert_stopped_before_any_job(
        proc, work, "methods.gptq-8bit-g32.bits: 5 is not supported by backend 'gptq'; allowed: 2, 3, 4, 8")


def test_awq_group_size_stops_a_dry_run_before_any_job(tmp_path):
    work = _bad_project(tmp_path, _set("methods.awq-4bit-g128", {**AWQ, "group_size": 128}))
    proc = snakemake(work, "-n", "--configfile", "bad.yaml", check=False, timeout=300)
    _assert_stopped_before_any_job(
        proc, work, "methods.awq-4bit-g128.group_size: 128 does not divide the layer width(s) [192]; choose a divisor "
        "of 192, 512 or -1 (AWQ kernel 'torch')")


def test_policy_error_from_a_command_line_override(tmp_path):
    work = _bad_project(tmp_path, _set("methods.gptq-marlin", MARLIN))
    proc = snakemake(work, "-n", "--configfile", "bad.yaml", "--config", "unsupported_methods=error",
                     check=False, timeout=300)
    _assert_stopped_before_any_job(proc, work, "methods.gptq-marlin: GPTQ kernel 'marlin' runs on CUDA only")


# --- datasets an offline run cannot fetch, config files as files, rules named in resources ----------

def test_offline_suite_needs_its_datasets_in_the_cache(tmp_path, monkeypatch):
    from quantbench.suites import suite

    hub, processed = tmp_path / "hub", tmp_path / "datasets"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(processed))
    config = copy.deepcopy(DEFAULT)
    config["evaluate"]["suite"] = "leaderboard-v1"
    errors = _errors(config, tmp_path)
    wanted = [e["dataset"] for e in suite("leaderboard-v1")]
    assert len(errors) == 1 and errors[0].startswith("evaluate.suite: 'leaderboard-v1'"), errors
    assert all(d in errors[0] for d in wanted) and "allowed offline: toy, wordnet" in errors[0]
    # In either cache (the hub's files, or datasets' own processed copy) the suite is accepted.
    for i, d in enumerate(wanted):
        root, name = (hub, f"datasets--{d.replace('/', '--')}") if i % 2 else (processed, d.replace("/", "___"))
        (root / name).mkdir(parents=True)
    validation.load(config, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    validation.load({**config, "offline": False}, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))


def test_offline_calibration_dataset_needs_to_be_cached(tmp_path, monkeypatch):
    """A hub dataset in data.calibration while offline was a note; the quantize job then failed."""
    hub, processed = tmp_path / "hub", tmp_path / "datasets"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(processed))
    config = copy.deepcopy(DEFAULT)
    _files_source(calibration=TEXTS, finetune=PAIRS, heldout=TEXTS)(config, tmp_path)
    config["data"]["calibration"] = {"path": "Salesforce/wikitext", "name": "wikitext-2-raw-v1", "split": "train"}
    errors = _errors(config, tmp_path)
    assert errors == [f"data.calibration.path: 'Salesforce/wikitext' is a dataset hub id that is not in the Hugging "
                      f"Face cache here ({hub}, {processed}), and offline is true: no job could fetch it; allowed: a "
                      "cached dataset (download it first), a JSON lines file, or offline: false"]
    validation.load({**config, "offline": False}, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    (processed / "Salesforce___wikitext").mkdir(parents=True)  # datasets' own processed copy
    validation.load(config, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    # a loader with local files, or a local dataset folder, is no hub id
    config["data"]["calibration"] = {"path": "json", "data_files": "calibration.jsonl"}
    validation.load(config, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    (tmp_path / "my-dataset").mkdir()
    config["data"]["calibration"] = {"path": "my-dataset"}
    validation.load(config, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))


FILE_CASES = {
    "missing": (None, "does not exist"),
    "yaml syntax": (b"model: {name: x\n  bad: [\n", ", line 2, column 6: not valid YAML"),
    "not utf-8": (b"model:\n  name: caf\xe9\n", ", line 2: byte 0xe9 is not UTF-8"),
    "not a mapping": (b"- a\n- b\n", "the file holds list"),
    "duplicate method": (b"methods:\n  a: {backend: none}\n  b: {backend: none}\n  a: {backend: bnb}\n",
                         ", line 4: key 'methods.a' is given twice (first at line 2)"),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_config_file_problem_names_file_and_line(case, tmp_path):
    """What scripts/run.sh runs before Snakemake parses --configfile."""
    import subprocess
    import sys

    content, expected = FILE_CASES[case]
    if content is not None:
        (tmp_path / "bad.yaml").write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "quantbench.config_file", "-n", "--configfile", "bad.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0] == "invalid config:" and len(lines) == 2, proc.stderr
    assert lines[1].startswith("  - bad.yaml") and expected in lines[1], lines[1]


def test_run_sh_checks_config_files_before_snakemake():
    script = (ROOT / "scripts/run.sh").read_text()
    assert script.index("-m quantbench.config_file \"$@\"") < script.index(".venv/bin/snakemake")


def test_duplicate_key_stops_a_dry_run(tmp_path):
    work = _bad_project(tmp_path, lambda cfg, tmp: None)
    text = (work / "bad.yaml").read_text()
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.strip().startswith("bnb-int8:"))
    (work / "bad.yaml").write_text(text.replace("methods:\n", "methods:\n  bnb-int8: {backend: bnb, bits: 4}\n", 1))
    proc = snakemake(work, "-n", "--configfile", "bad.yaml", check=False, timeout=300)
    _assert_stopped_before_any_job(proc, work, f"{work / 'bad.yaml'}, line {line + 1}: key 'methods.bnb-int8' is "
                                   "given twice (first at line")


def test_misspelt_resources_rule_stops_a_dry_run(tmp_path):
    work = _bad_project(tmp_path, _set("resources", {"quantise": {"mem_mb": 8000}}))
    proc = snakemake(work, "-n", "--configfile", "bad.yaml", check=False, timeout=300)
    _assert_stopped_before_any_job(proc, work, "resources.quantise: not one of the workflow's rules; did you mean "
                                   "'quantize'? allowed: benchmark")


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_direct_snakemake_command_gives_the_run_sh_message(case, tmp_path):
    """scripts/snakemake (the cluster command) checks --configfile files as scripts/run.sh does; a
    bare `snakemake` cannot: it parses them before any workflow code runs."""
    import subprocess
    import sys

    content, expected = FILE_CASES[case]
    if content is not None:
        (tmp_path / "bad.yaml").write_bytes(content)
    args = ["-n", "--configfile", "bad.yaml"]
    direct = subprocess.run(["bash", str(ROOT / "scripts/snakemake"), *args], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    checker = subprocess.run([sys.executable, "-m", "quantbench.config_file", *args], cwd=tmp_path,
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert direct.returncode == 1 and direct.stderr == checker.stderr and expected in direct.stderr, direct.stderr
    assert direct.stdout == ""  # snakemake did not start


def test_target_after_configfile_is_named_as_such(tmp_path):
    (tmp_path / "setup.yaml").write_text("model: {name: x, source: toy}\n")
    proc = subprocess_config_check(tmp_path, "-n", "--configfile", "setup.yaml", "all")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[1] == (
        "  - all: written after --configfile setup.yaml, so Snakemake reads it as a second config file (it does "
        "not exist); allowed: a target before --configfile (put targets first: snakemake all --configfile "
        "setup.yaml ...), or "
        "--configfile=setup.yaml all")
    # two real config files after one flag are still read as config files
    (tmp_path / "overlay.yaml").write_text("methods: {}\n")
    assert subprocess_config_check(tmp_path, "--configfile", "setup.yaml", "overlay.yaml").returncode == 0


@pytest.mark.parametrize("target, what", [
    ("results/x/models/fp32", "it is a folder"),            # a model folder that exists, to be rebuilt
    ("results/x/report/report.md", "it is not a .yaml, .yml or .json file"),
    ("results/x/records/quantize/fp32.json", "it holds none of the config's keys"),  # a record: JSON
])
def test_existing_target_after_configfile_says_put_targets_first(tmp_path, target, what):
    """A target that exists was read as a config file (a folder, or a record whose keys are unknown)."""
    (tmp_path / "setup.yaml").write_text("model: {name: x, source: toy}\n")
    (tmp_path / "results/x/models/fp32").mkdir(parents=True)
    (tmp_path / "results/x/report").mkdir()
    (tmp_path / "results/x/report/report.md").write_text("# report\n")
    (tmp_path / "results/x/records/quantize").mkdir(parents=True)
    (tmp_path / "results/x/records/quantize/fp32.json").write_text('{"stage": "quantize", "metrics": {}}\n')
    proc = subprocess_config_check(tmp_path, "--configfile", "setup.yaml", target)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[1:] == [
        f"  - {target}: written after --configfile setup.yaml, so Snakemake reads it as a second config file ({what}); "
        f"allowed: a target before --configfile (put targets first: snakemake {target} --configfile setup.yaml "
        f"...), or --configfile=setup.yaml {target}"]


def subprocess_config_check(cwd: Path, *args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "quantbench.config_file", *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_overlay_given_alone_says_it_is_an_overlay(tmp_path):
    """An overlay alone listed the setup's keys as missing (and `encoder`, for a causal-LM setup)."""
    from quantbench import config_file

    overlay = yaml.safe_load((ROOT / "config/overlays/smollm2-int8dyn.yaml").read_text())
    assert config_file.overlay_problems(overlay, ["config/overlays/smollm2-int8dyn.yaml"]) == [
        "config/overlays/smollm2-int8dyn.yaml: no model: section, so this is an overlay (it adds to a setup); "
        "allowed: the setup first, then the overlay, e.g. --configfile config/smollm2.yaml "
        "config/overlays/smollm2-int8dyn.yaml"]
    assert config_file.overlay_problems(DEFAULT, ["config/config.yaml"]) == []
    assert "encoder: missing; required in the top level" not in config_messages.schema_errors(overlay)
    work = copy_project(tmp_path / "project")
    proc = snakemake(work, "-n", "--configfile", "config/overlays/smollm2-int8dyn.yaml", check=False, timeout=300)
    _assert_stopped_before_any_job(proc, work, "config/overlays/smollm2-int8dyn.yaml: no model: section, so this "
                                   "is an overlay")
