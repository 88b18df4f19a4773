"""Weights MB split into the body and the embedding/output head (quantbench.memory.weights_split_mb),
on tiny real Llamas quantized by the real libraries: the parts sum to model_weights_mb exactly, and
the embedding/head part holds exactly what its tensors hold. bitsandbytes and GPTQModel leave the
embedding and the head in float32 (two tables when untied, one when tied); a GGUF file stores its
token_embd in its own type (Q8_0 here), counted from the GGML type's block layout, not the file's
byte count the function itself reads."""
from __future__ import annotations

import pytest
import torch

from quantbench.atomic import atomic_dir
from quantbench.backends import get
from quantbench.loading import load, load_model
from quantbench.memory import model_weights_mb, weights_split_mb
from quantbench.modelio import RunContext, write_meta

PARAMS = {
    "none": {"dtype": "float32"},
    "bnb": {"bits": 4, "quant_type": "nf4", "double_quant": True, "compute_dtype": "auto"},
    "gptq": {"bits": 4, "group_size": 32, "desc_act": False, "sym": True, "kernel": "torch", "damp_percent": 0.05},
}


def _quantized(backend: str, src, tmp_path):
    if backend == "none":
        return load_model(str(src), RunContext())[0]
    ctx = RunContext(calibration_texts=["The capital of Kalo is Renva. one plus two is three."] * 16,
                     calibration_seq_len=32)
    out = tmp_path / backend
    with atomic_dir(out) as tmp:
        get(backend).quantize(str(src), tmp, PARAMS[backend], ctx)
        write_meta(tmp, {"method": backend, "backend": backend, "params": PARAMS[backend]})
    return load_model(str(out), ctx)[0]


def _check_sum(model):
    split = weights_split_mb(model)
    assert set(split) == {"body_mb", "embedding_head_mb"}
    assert split["body_mb"] + split["embedding_head_mb"] == model_weights_mb(model)  # exactly
    assert split["body_mb"] > 0 and split["embedding_head_mb"] > 0
    return split


@pytest.mark.parametrize("backend", ["none", "bnb", "gptq"])
def test_untied_float32_embedding_and_head_are_split_off(backend, tiny_model, tmp_path):
    model = _quantized(backend, tiny_model, tmp_path)
    split = _check_sum(model)
    cfg = model.config
    assert not cfg.tie_word_embeddings
    # the input table and the output head, each vocab x hidden float32: neither backend quantizes them
    assert split["embedding_head_mb"] * 2**20 == 2 * cfg.vocab_size * cfg.hidden_size * 4
    assert model.get_output_embeddings().weight.dtype == torch.float32
    if backend != "none":  # the body is where the 4-bit saving is
        base = weights_split_mb(load_model(str(tiny_model), RunContext())[0])
        assert split["body_mb"] < base["body_mb"] / 3


def test_tied_table_counted_once(smol_tiny):
    model = load_model(str(smol_tiny), RunContext())[0]
    cfg = model.config
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    split = _check_sum(model)
    assert split["embedding_head_mb"] * 2**20 == cfg.vocab_size * cfg.hidden_size * 4


def test_gguf_file_split_by_its_token_embd_type(smol_tiny, tmp_path):
    import gguf as gguf_py

    from quantbench import llamacpp

    dst = tmp_path / "q8"
    dst.mkdir()
    get("gguf").quantize(str(smol_tiny), dst, {"type": "Q8_0", "n_ctx": 256}, RunContext())
    write_meta(dst, {"method": "gguf-q8_0", "backend": "gguf", "params": {"type": "Q8_0", "n_ctx": 256}})
    loaded = load(str(dst), RunContext())[0]
    model, weights = loaded.model, loaded.file_weights  # counted from the file's tensors
    split = {"body_mb": weights.body_mb, "embedding_head_mb": weights.embedding_head_mb}
    assert split["body_mb"] + split["embedding_head_mb"] == weights.weights_mb  # exactly
    assert split["body_mb"] > 0 and split["embedding_head_mb"] > 0
    tensors = {t.name: t for t in gguf_py.GGUFReader(str(dst / llamacpp.GGUF_FILE)).tensors}
    assert "output.weight" not in tensors  # tied: the head reads token_embd
    embd = tensors["token_embd.weight"]
    assert embd.tensor_type == gguf_py.GGMLQuantizationType.Q8_0
    block, type_bytes = gguf_py.GGML_QUANT_SIZES[embd.tensor_type]
    cfg = model.config
    assert split["embedding_head_mb"] * 2**20 == cfg.vocab_size * cfg.hidden_size // block * type_bytes
    # the body is every other tensor of the file
    assert split["body_mb"] * 2**20 == sum(int(t.n_bytes) for n, t in tensors.items() if n != "token_embd.weight")


def test_untied_gguf_file_counts_token_embd_and_output(tmp_path):
    """A file with its own output.weight (tests/gguf_writer.py writes both in float32): both tables are
    the embedding/head part; output_norm, the final norm, stays in the body as the torch split has it."""
    from quantbench import llamacpp
    from tests.gguf_writer import HIDDEN, write_tiny_llama

    path = write_tiny_llama(tmp_path / "tiny.gguf")
    summary = llamacpp.tensor_summary(path)
    vocab = 256 + 3 + 1  # the writer's vocabulary: 256 byte tokens, 3 merges, <|endoftext|>
    assert summary["embedding_head_bytes"] == 2 * vocab * HIDDEN * 4
    assert summary["decode_bytes"] == summary["tensor_bytes"] - vocab * HIDDEN * 4
