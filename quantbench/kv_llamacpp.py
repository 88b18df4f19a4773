"""A GGUF variant run by llama.cpp with a chosen KV-cache type (type_k / type_v), fed in chunks.

llama.cpp writes each micro-batch's keys and values into its cache first and attends from the cache,
so (unlike transformers' QuantizedCache) a chunk attends to its own keys as stored too. A quantized V
cache needs flash attention; every row of this stage runs with it on, the plain f16 row included, so
that a row and its quantized-cache rows differ only in the cache.
"""
from __future__ import annotations

from pathlib import Path

import torch

from quantbench.kv_config import KVCache
from quantbench.llamacpp import LlamaCppModel

PLAIN = {"type_k": "f16", "type_v": "f16"}  # llama.cpp's own default cache


def ggml_type(name: str) -> int:
    import llama_cpp

    return getattr(llama_cpp, f"GGML_TYPE_{name.upper()}")


class LlamaCppKV(LlamaCppModel):
    """LlamaCppModel with the cache types, flash attention and a decode batch of `chunk` tokens."""

    def __init__(self, folder: str | Path, n_threads: int, n_ctx: int, chunk: int, spec: KVCache | None,
                 n_gpu_layers: int = 0, process: str | None = None):
        types = spec.params if spec is not None else PLAIN
        self.cache_types = {"type_k": types["type_k"], "type_v": types["type_v"]}
        # offloaded layers keep their K and V on the GPU too (llama-cpp-python's offload_kqv, on by default)
        super().__init__(folder, n_threads, n_ctx, n_gpu_layers, process, n_batch=chunk, n_ubatch=chunk,
                         flash_attn=True, type_k=ggml_type(types["type_k"]), type_v=ggml_type(types["type_v"]))

    def clear(self) -> None:
        self.engine.clear()

    def chunk_logits(self, tokens: list[int], n_past: int) -> torch.Tensor:
        """Append `tokens` after `n_past` cached ones; their logits [len, vocab]."""
        return torch.from_numpy(self.engine.append(list(tokens), n_past, len(tokens)))

    def state_bytes(self) -> int:
        """Bytes of sequence 0's state as llama.cpp serializes it: the K and V rows of its cells in
        their stored type, plus a few bytes of positions per cell (measured, not the nominal size)."""
        return self.engine.state_bytes()


@torch.inference_mode()
def chunked_logprobs(model: LlamaCppKV, window: torch.Tensor, chunk: int):
    """As kv_quality.chunked_logprobs, through llama.cpp's cache (cleared first)."""
    model.clear()
    ids, n_pos = window.tolist(), window.numel()
    for start in range(0, n_pos - 1, chunk):
        logits = model.chunk_logits(ids[start:start + chunk], start)
        keep = min(logits.shape[0], n_pos - 1 - start)
        yield start, torch.log_softmax(logits[:keep].float(), -1), window[start:start + keep + 1]


def decode_steps(model: LlamaCppKV, prompt: list[int], steps: int) -> dict:
    """Fill the cache with `prompt`, then time `steps` one-token decode calls (greedy), timed where llama.cpp
    runs (a worker's round trip is not in the step times)."""
    return model.engine.timed_decode(list(prompt), steps)

