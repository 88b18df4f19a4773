"""The KV-cache axis on tiny models: transformers' real QuantizedCache (HQQ, fp8) and llama.cpp's cache
types, fed in chunks as the kv_evaluate job feeds them (quantbench/kv_quality.py)."""
from __future__ import annotations

import pytest
import torch

from quantbench import kv_config, kv_cost, kv_quality
from quantbench.kv_cache import cache_bytes, make_cache
from quantbench.loading import load_model
from quantbench.modelio import RunContext, load_tokenizer

CONTEXTS, COUNTS, CHUNK = [32, 128], [4, 3], 32
CACHES = {"kv-hqq4": {"backend": "hqq", "bits": 4, "residual_length": 32},
          "kv-hqq2": {"backend": "hqq", "bits": 2, "residual_length": 32},
          "kv-fp8": {"backend": "fp8"}}


def toy_tokens(tokenizer) -> list[int]:
    from quantbench.toy import world

    text = " ".join(world.documents(world.make_countries(1), 1, 200))
    return tokenizer(text, add_special_tokens=False).input_ids


@pytest.fixture(scope="module")
def setup(tiny_model):
    model, tok, _ = load_model(str(tiny_model), RunContext())
    with torch.no_grad():  # a peaked next-token distribution, so that KL and agreement mean something
        model.model.embed_tokens.weight.mul_(8)
    windows = kv_quality.windows(toy_tokens(tok), CONTEXTS, COUNTS)
    ref = {}
    for length, w in windows.items():
        parts = [kv_quality.reference_pass(model, w[i], CHUNK, None) for i in range(len(w))]
        ref[length] = {k: torch.stack([p[k] for p in parts]) for k in parts[0]}
    return model, windows, ref


def score(model, windows, ref, spec):
    """{context: {bucket: metrics}} and the bytes the cache held after the longest context's first window."""
    edges, held, out = kv_quality.buckets(CONTEXTS), {}, {}
    for length, w in windows.items():
        def passes():
            for i in range(len(w)):
                cache = make_cache(spec, model.config)
                yield kv_quality.chunked_logprobs(model, w[i], CHUNK, cache)
                if i == 0 and length == max(CONTEXTS):
                    held.update(cache_bytes(cache))
        blocks = kv_quality.score_windows(passes(), ref[length], edges, CHUNK)
        out[length] = {b: kv_quality.bucket_metrics(v) for b, v in blocks.items()}
    return out, held["total_bytes"] / max(CONTEXTS)


def test_the_chunked_reference_equals_one_full_forward(setup):
    model, windows, _ = setup
    window = windows[max(CONTEXTS)][0]
    chunked = torch.cat([lp for _, lp, _ in kv_quality.chunked_logprobs(model, window, CHUNK,
                                                                         make_cache(None, model.config))])
    full = kv_quality.full_logprobs(model, window)
    assert chunked.shape == full.shape == (max(CONTEXTS) - 1, model.config.vocab_size)
    torch.testing.assert_close(chunked, full, atol=1e-4, rtol=1e-4)


def test_plain_cache_matches_the_reference_and_quantized_caches_do_not(setup):
    model, windows, ref = setup
    caches = kv_config.caches({"kv_cache": {"caches": CACHES}})
    plain, plain_bytes = score(model, windows, ref, None)
    assert all(m["kl_mean"] == 0 and m["top1_agreement"] == 1 for ctx in plain.values() for m in ctx.values())
    hqq4, hqq4_bytes = score(model, windows, ref, caches["kv-hqq4"])
    hqq2, hqq2_bytes = score(model, windows, ref, caches["kv-hqq2"])
    fp8, fp8_bytes = score(model, windows, ref, caches["kv-fp8"])
    far = f"{CONTEXTS[0]}-{CONTEXTS[1]}"  # positions that attend to earlier chunks through the cache
    assert hqq4[max(CONTEXTS)][far]["kl_mean"] > 0 and fp8[max(CONTEXTS)][far]["kl_mean"] > 0
    assert hqq2[max(CONTEXTS)][far]["kl_mean"] > 2 * hqq4[max(CONTEXTS)][far]["kl_mean"]
    # bytes per token from the stored tensors: the float32 cache is K and V of every layer, 4 bytes each
    cfg = model.config
    kv_width = cfg.num_key_value_heads * cfg.hidden_size // cfg.num_attention_heads
    assert plain_bytes == 2 * cfg.num_hidden_layers * kv_width * 4
    # 4 bits plus a float32 scale and zero per group of 64, at most one residual window in float32
    assert hqq4_bytes < 0.3 * plain_bytes and hqq2_bytes < hqq4_bytes
    assert fp8_bytes == pytest.approx(plain_bytes / 4, rel=0.01)


def test_decode_timing_fills_the_cache_and_records_peak_memory(setup):
    model, windows, _ = setup
    spec = kv_config.caches({"kv_cache": {"caches": CACHES}})["kv-hqq4"]
    out = kv_cost.torch_decode(model, spec, windows[max(CONTEXTS)][0][:64], batch=2, steps=8, chunk=CHUNK)
    assert out["status"] == "ok" and out["decode_steps"] == 8 and out["tokens_in_cache"] == 72
    assert out["decode_step_ms_median"] > 0 and out["peak_memory_mb"] > 0
    assert kv_cost.fits(1e6, 1e3, [1])["1"] == (2**30 - 1e6) // 1e3


def test_llama_cpp_cache_types_change_the_logits_and_the_stored_bytes(smol_tiny, tmp_path):
    pytest.importorskip("llama_cpp")
    from quantbench import llamacpp
    from quantbench.backends import get

    if llamacpp.available():
        pytest.skip(llamacpp.available())
    from transformers import LlamaConfig, LlamaForCausalLM

    from quantbench import kv_llamacpp
    from quantbench.modelio import write_meta

    # llama.cpp's quantized cache types hold blocks of 32 values along a head: heads of 64 here
    tok = load_tokenizer(str(smol_tiny))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    base = LlamaForCausalLM(cfg)
    with torch.no_grad():
        base.model.embed_tokens.weight.mul_(8)
    src = tmp_path / "base"
    base.save_pretrained(src)
    tok.save_pretrained(src)
    write_meta(src, {"method": "base", "backend": "none", "params": {"dtype": "float32"}})
    folder = tmp_path / "gguf-f32"
    folder.mkdir()
    get("gguf").quantize(str(src), folder, {"type": "F32", "n_ctx": 256}, RunContext())
    torch_model, _, _ = load_model(str(src), RunContext())
    ids = tok("The quick brown fox jumps over the lazy dog. " * 60, add_special_tokens=False).input_ids
    windows = kv_quality.windows(ids, [128], [2])[128]
    ref = [kv_quality.reference_pass(torch_model, windows[i], CHUNK, 64) for i in range(2)]
    ref = {k: torch.stack([p[k] for p in ref]) for k in ref[0]}
    caches = kv_config.caches({"kv_cache": {"caches": {
        "q8": {"backend": "llamacpp", "type_k": "q8_0", "type_v": "q8_0"},
        "q4": {"backend": "llamacpp", "type_k": "q4_0", "type_v": "q4_0"}}}})
    kl, stored = {}, {}
    for name in (None, "q8", "q4"):
        model = kv_llamacpp.LlamaCppKV(folder, 1, 256, CHUNK, caches.get(name))
        passes = (kv_llamacpp.chunked_logprobs(model, windows[i], CHUNK) for i in range(2))
        blocks = kv_quality.score_windows(passes, ref, [(0, 128)], CHUNK)
        kl[name] = kv_quality.bucket_metrics(blocks["0-128"])["kl_mean"]
        stored[name] = model.state_bytes()
    # f32 weights with the f16 cache are close to transformers' float32; a 4-bit cache is not
    assert kl[None] < 1e-3 and kl["q4"] > kl[None] and kl["q4"] > kl["q8"]
    assert stored["q4"] < stored["q8"] < stored[None]


def test_kv_variants_are_named_method_at_cache_beside_the_plain_row():
    config = {"baseline": "fp32", "kv_cache": {"caches": CACHES, "apply": {"fp32": ["kv-hqq4"],
                                                                            "bnb-nf4": ["kv-hqq4", "kv-fp8"]}}}
    assert kv_config.variants(config, ["fp32", "bnb-nf4"]) == ["fp32", "fp32@kv-hqq4", "bnb-nf4",
                                                               "bnb-nf4@kv-hqq4", "bnb-nf4@kv-fp8"]
    assert kv_config.variants(config, ["fp32"]) == ["fp32", "fp32@kv-hqq4"]  # a skipped method's rows go
    assert kv_config.split("bnb-nf4@kv-hqq4") == ("bnb-nf4", "kv-hqq4") and kv_config.split("fp32") == ("fp32", None)
    assert kv_config.variants({"baseline": "fp32"}, ["fp32"]) == []  # no kv_cache: nothing added


def test_position_buckets_follow_the_contexts():
    assert kv_quality.buckets([512, 2048, 8192]) == [(0, 512), (512, 2048), (2048, 8192)]
