"""The GGUF backend through the real llama.cpp: a tiny random Llama with SmolLM2's tokenizer (one
llama.cpp's converter recognises) converted by llama.cpp's converter, quantized by
llama_model_quantize, and run by llama.cpp: its logits, its lm-eval scores through our adapter,
its distribution metrics and its benchmark cells, each against the same model in transformers."""
from __future__ import annotations

import pytest
import torch

from quantbench import benchmark, distribution, llamacpp
from quantbench.backends import get
from quantbench.modelio import RunContext, load_causal_lm

gguf = get("gguf")  # the registered backend (its module is quantbench.backends.gguf)

# scripts/test.sh installs llama.cpp (scripts/setup-llamacpp.sh): its absence is a failure, not a skip
assert llamacpp.available() is None, llamacpp.available()


@pytest.fixture(scope="module")
def quantized(smol_tiny, tmp_path_factory):
    """quantized(type) -> (folder, what gguf.quantize returned): each type converted and quantized
    once for this module (F32 serves three tests, Q8_0 two); the folders are only read."""
    root, made = tmp_path_factory.mktemp("gguf"), {}

    def get_type(type_):
        if type_ not in made:
            dst = root / type_
            dst.mkdir()
            made[type_] = dst, gguf.quantize(str(smol_tiny), dst, {"type": type_, "n_ctx": 256}, RunContext())
        return made[type_]
    return get_type


def test_llama_cpp_float32_computes_what_transformers_computes(smol_tiny, quantized):
    folder, extra = quantized("F32")
    assert extra["converted_as"] == "f32" and extra["tensor_types"].get("F32")
    ref, tok = load_causal_lm(str(smol_tiny), "cpu", torch.float32)
    ids = tok("The quick brown fox jumps over the lazy dog, and then it runs away.", return_tensors="pt").input_ids
    with torch.no_grad():
        want = ref(input_ids=ids).logits[0]
    loaded = gguf.load(str(folder), {"n_ctx": 256}, RunContext())
    model, info = loaded.model, loaded.info
    got = model(input_ids=ids).logits[0]
    assert info["kernel"] == "llama.cpp-cpu" and info["n_threads"] >= 1
    assert loaded.runtime == "llama.cpp" and loaded.batch_limit == 64
    assert torch.allclose(got, want, atol=1e-3, rtol=1e-3), (got - want).abs().max()
    # greedy generation through the KV cache picks transformers' tokens
    prompt = ids[:, :6]
    with torch.no_grad():
        hf = ref.generate(input_ids=prompt, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    assert model.generate(input_ids=prompt, max_new_tokens=8).tolist() == hf.tolist()


def test_quantized_files_hold_llama_cpp_types_and_report_fallbacks(quantized):
    q8, e8 = quantized("Q8_0")
    assert e8["tensor_types"].get("Q8_0", 0) > 0
    assert e8["measured_bits_per_weight"] == 8.5  # 34 bytes per block of 32
    # width 64 is not a multiple of k-quants' 256-weight super-blocks: llama.cpp falls back and says so
    _, ek = quantized("Q4_K_M")
    assert ek["fallback_tensors"] > 0, ek
    assert "Q4_K" not in ek["tensor_types"], ek["tensor_types"]
    assert not (q8 / "model-f32.gguf").exists()  # the lossless intermediate is not kept


def test_scores_through_lm_eval_adapter_match_hflm(smol_tiny, quantized):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from quantbench.llamacpp_lm import LlamaCppLM

    folder, _ = quantized("F32")
    model = gguf.load(str(folder), {"n_ctx": 256}, RunContext()).model
    ref, tok = load_causal_lm(str(smol_tiny), "cpu", torch.float32)
    pairs = [("The capital of France is", " Paris"), ("The capital of France is", " a city by the river"),
             ("Two plus two equals", " four"), ("", "Hello world")]
    reqs = [Instance(request_type="loglikelihood", doc={}, arguments=p, idx=i) for i, p in enumerate(pairs)]
    ours = LlamaCppLM(model, tok).loglikelihood(reqs, disable_tqdm=True)
    theirs = HFLM(pretrained=ref, tokenizer=tok, batch_size=4).loglikelihood(reqs, disable_tqdm=True)
    for (a, ga), (b, gb) in zip(ours, theirs):
        assert abs(a - b) < 1e-2 * max(1.0, abs(b)), (ours, theirs)
        assert ga == gb
    rolling = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=("A short text to score " * 20,),
                        idx=0)]
    a = LlamaCppLM(model, tok).loglikelihood_rolling(rolling, True)
    b = HFLM(pretrained=ref, tokenizer=tok).loglikelihood_rolling(rolling, True)
    assert abs(a[0] - b[0]) < 1e-2 * abs(b[0])


def test_distribution_metrics_and_benchmark_cells_on_llama_cpp(smol_tiny, quantized):
    ref, tok = load_causal_lm(str(smol_tiny), "cpu", torch.float32)
    texts = ["a sentence of plain English about the weather and the sea"] * 40
    windows = distribution.token_windows(tok, texts, 256, 32)
    summary = distribution.reference_summary(ref, windows, "cpu", 4, top_k=64)
    metrics = {}
    for type_ in ("F32", "Q8_0", "Q4_0"):
        folder, _ = quantized(type_)
        loaded = gguf.load(str(folder), {"n_ctx": 256}, RunContext())
        model = loaded.model
        metrics[type_] = distribution.compare_model(summary, model, windows, "cpu", 4)
    assert metrics["F32"]["kl_mean"] < 1e-4 and metrics["F32"]["top1_agreement"] == 1.0
    assert metrics["F32"]["kl_mean"] < metrics["Q8_0"]["kl_mean"] < metrics["Q4_0"]["kl_mean"], metrics

    spec = {"prompt_len": 8, "batch_sizes": [1, 2]}
    rows = benchmark.run_prefill(model, model.config.vocab_size, "cpu", spec, 0, 2, 0, {tok.eos_token_id},
                                 batch_limit=loaded.batch_limit, batch_reason=loaded.batch_reason)
    assert [r["outcome"] for r in rows] == ["ok", "ok"] and rows[0]["prefill_ms_per_token"] > 0
    gen = {"prompt_len": 4, "new_tokens": [3], "batch_sizes": [1, 2], "use_cache": [True, False]}
    cells = benchmark.run_generate(model, model.config.vocab_size, "cpu", gen, 0, 2, 0, {tok.eos_token_id},
                                   tok.eos_token_id, weights_mb=benchmark.weights_mb(loaded).decode_mb,
                                   bandwidth_gb_per_s=None, kv_bytes=4)
    by = {(c["batch_size"], c["use_cache"]): c for c in cells}
    assert by[(1, True)]["outcome"] == "ok" and by[(1, True)]["decode_tokens_per_s"] > 0
    assert by[(2, True)]["outcome"] == "ok" and by[(2, True)]["decode_tokens_per_s"] > 0
    assert by[(1, False)]["outcome"] == "unsupported"  # llama.cpp always decodes with its KV cache
    assert 0 < benchmark.weights_mb(loaded).decode_mb <= loaded.file_weights.weights_mb


def test_batched_rows_compute_what_each_row_computes_alone(smol_tiny, quantized):
    """A batch of prompts decoded together in one llama.cpp context (llamacpp_batch): each row's last
    logits and greedy tokens are those of the row decoded alone, left padding and unequal lengths
    included, and a batch above the cap is refused with the reason."""
    _, tok = load_causal_lm(str(smol_tiny), "cpu", torch.float32)
    folder, _ = quantized("Q8_0")
    model = gguf.load(str(folder), {"n_ctx": 256}, RunContext()).model
    texts = ["The quick brown fox jumps over the lazy dog.", "Rain in the hills",
             "A list of numbers: one, two, three, four, five, six."]
    tok.padding_side = "left"
    tok.pad_token = tok.pad_token or tok.eos_token
    batch = tok(texts, return_tensors="pt", padding=True)
    got = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, logits_to_keep=1).logits[:, -1]
    alone = [model(input_ids=tok(t, return_tensors="pt").input_ids).logits[0, -1] for t in texts]
    for row, want in zip(got, alone):
        assert torch.allclose(row, want, atol=1e-3, rtol=1e-3), (row - want).abs().max()
    out = model.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, max_new_tokens=6)
    assert out.shape == (3, batch.input_ids.shape[1] + 6)
    for row, t in zip(out, texts):
        ids = tok(t, return_tensors="pt").input_ids
        assert row[-6:].tolist() == model.generate(input_ids=ids, max_new_tokens=6)[0, -6:].tolist()
    # the context opened for this batch serves a smaller one; a larger one opens another
    first = model.engine._batched
    model.generate(input_ids=batch.input_ids[:2], attention_mask=batch.attention_mask[:2], max_new_tokens=2)
    assert model.engine._batched is first
    from quantbench.unsupported import Unsupported
    with pytest.raises(Unsupported, match="at most 64 sequences"):
        model.generate(input_ids=torch.ones(65, 4, dtype=torch.long), max_new_tokens=1)


def test_llama_cpp_missing_is_one_line(monkeypatch):
    monkeypatch.setattr(llamacpp, "CONVERTER_DIR", llamacpp.CONVERTER_DIR / "nowhere")
    why = gguf.unavailable({"type": "Q8_0"})
    assert why and "setup-llamacpp.sh" in why and "\n" not in why


def test_embedding_type_keeps_the_embedding_in_float_as_the_pytorch_schemes_do(smol_tiny, quantized, tmp_path):
    """embedding_type: F32 gives the token embedding (and head) llama.cpp's F32 instead of the type
    its file type picks, so a GGUF body can be set beside a PyTorch scheme's with the embedding alike."""
    from transformers import AutoConfig

    default_folder, _ = quantized("Q4_0")
    extra = gguf.quantize(str(smol_tiny), tmp_path, {"type": "Q4_0", "n_ctx": 256, "embedding_type": "F32"},
                          RunContext())
    cfg = AutoConfig.from_pretrained(smol_tiny)
    heads = 1 if cfg.tie_word_embeddings else 2
    want = heads * cfg.vocab_size * cfg.hidden_size * 4
    chosen = llamacpp.tensor_summary(tmp_path / llamacpp.GGUF_FILE)
    default = llamacpp.tensor_summary(default_folder / llamacpp.GGUF_FILE)
    assert chosen["embedding_head_bytes"] == want
    assert default["embedding_head_bytes"] < want  # llama.cpp quantizes it by default
    # the body is the same file type either way
    bits = chosen["measured_bits_per_weight"]
    assert bits == default["measured_bits_per_weight"] == extra["measured_bits_per_weight"]
    assert chosen["tensor_bytes"] - chosen["embedding_head_bytes"] == \
        default["tensor_bytes"] - default["embedding_head_bytes"]
    assert "embedding F32" in gguf.describe({"type": "Q4_0", "embedding_type": "F32"})
