"""A tiny Llama written as a GGUF file with the `gguf` package: a base model for the tests of the
`gguf` model source, small enough to convert in seconds."""
from __future__ import annotations

from pathlib import Path

import numpy as np

HIDDEN, FF, HEADS, KV_HEADS, LAYERS = 64, 128, 4, 2, 2


def _byte_tokens() -> list[str]:
    # GPT-2's byte-to-unicode table: every byte is one printable symbol, so a byte-level BPE
    # vocabulary of 256 tokens covers any text.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def write_tiny_llama(path: Path, architecture: str = "llama", seed: int = 0, layers_written: int = LAYERS,
                     tokenizer: bool = True) -> Path:
    """layers_written < LAYERS and tokenizer=False write the incomplete files validation must refuse."""
    import gguf

    rng = np.random.default_rng(seed)
    merges = ["Ġ t", "h e", "i n"]
    tokens = _byte_tokens() + [m.replace(" ", "") for m in merges] + ["<|endoftext|>"]
    vocab = len(tokens)
    w = gguf.GGUFWriter(str(path), architecture)
    w.add_name("tiny test llama")
    w.add_context_length(256)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_dimension_count(HIDDEN // HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_file_type(0)  # all F32
    if tokenizer:
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types([1] * (vocab - 1) + [3])
        w.add_token_merges(merges)
        w.add_bos_token_id(vocab - 1)
        w.add_eos_token_id(vocab - 1)

    def t(name, *shape):
        w.add_tensor(name, (rng.standard_normal(shape) * 0.05).astype(np.float32))

    t("token_embd.weight", vocab, HIDDEN)
    head_dim = HIDDEN // HEADS
    for i in range(layers_written):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        t(f"blk.{i}.attn_q.weight", HIDDEN, HIDDEN)
        t(f"blk.{i}.attn_k.weight", KV_HEADS * head_dim, HIDDEN)
        t(f"blk.{i}.attn_v.weight", KV_HEADS * head_dim, HIDDEN)
        t(f"blk.{i}.attn_output.weight", HIDDEN, HIDDEN)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        t(f"blk.{i}.ffn_gate.weight", FF, HIDDEN)
        t(f"blk.{i}.ffn_up.weight", FF, HIDDEN)
        t(f"blk.{i}.ffn_down.weight", HIDDEN, FF)
    w.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    t("output.weight", vocab, HIDDEN)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def overwrite_tensor_data(path: Path, fill: str, seed: int = 0) -> Path:
    """Replace every byte of a GGUF file's tensor data with zeros or random bytes, keeping its header,
    tensor table and size: a file that looks complete but holds no weights."""
    from quantbench.gguf_source import inspect

    start = inspect(path).data_start
    size = path.stat().st_size - start
    data = bytes(size) if fill == "zeros" else np.random.default_rng(seed).bytes(size)
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(data)
    return path
