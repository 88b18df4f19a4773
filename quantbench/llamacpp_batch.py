"""Several sequences decoded together by llama.cpp: one context whose KV cache holds a sequence id per
row, so that a prefill of B prompts is one llama_decode call and each generate step decodes B tokens at
once, as a serving engine batches requests. llama-cpp-python's `Llama` opens its context for one
sequence (n_seq_max 1) and exposes no way to ask for more, so this opens a second context on the same
loaded weights, from a copy of the `Llama`'s context parameters (its cache types, flash attention and
threads carry over), through the same private `_internals` the single-sequence path uses."""
from __future__ import annotations

import numpy as np

# What a cached context is sized in: a cell asking for a little more reuses it after the warm-up
CTX_STEP = 256


class BatchedContext:
    """A llama.cpp context for `n_seq` sequences of up to `n_ctx_seq` tokens each."""

    def __init__(self, llm, n_seq: int, n_ctx_seq: int):
        import llama_cpp
        from llama_cpp import _internals

        if not 1 <= n_seq <= llama_cpp.llama_max_parallel_sequences():
            raise ValueError(f"{n_seq} sequences: llama.cpp decodes 1 to "
                             f"{llama_cpp.llama_max_parallel_sequences()} together")
        self.n_seq, self.n_ctx_seq = n_seq, n_ctx_seq
        self.n_vocab = llm.n_vocab()
        params = type(llm.context_params).from_buffer_copy(llm.context_params)
        params.n_seq_max = n_seq
        # one pool for all sequences (kv_unified): each row takes what its length needs
        params.kv_unified = True
        params.n_ctx = n_seq * n_ctx_seq
        # a whole batched prefill in one call, as the single-sequence path takes a whole prompt
        params.n_batch = params.n_ctx
        self._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._batch = _internals.LlamaBatch(n_tokens=params.n_batch, embd=0, n_seq_max=1, verbose=False)

    def fits(self, n_seq: int, n_ctx_seq: int) -> bool:
        return n_seq <= self.n_seq and n_ctx_seq <= self.n_ctx_seq

    def close(self) -> None:
        self._batch.close()
        self._ctx.close()

    def _decode(self, rows: list[tuple[list[int], int]]) -> np.ndarray:
        """rows[s] = (tokens, position of the first): sequence s's next tokens; the logits of each
        row's last token, [len(rows), vocab] float32."""
        b, n = self._batch.batch, 0
        for seq, (tokens, start) in enumerate(rows):
            for i, tok in enumerate(tokens):
                put(b, n, tok, start + i, seq, i == len(tokens) - 1)
                n += 1
        b.n_tokens = n
        self._ctx.decode(self._batch)
        return output_logits(self._ctx, len(rows), self.n_vocab)

    def prefill(self, prompts: list[list[int]]) -> np.ndarray:
        """Each prompt from position 0 of an empty cache, all in one call; each one's last logits."""
        if len(prompts) > self.n_seq or max(map(len, prompts)) > self.n_ctx_seq:
            raise ValueError(f"{len(prompts)} prompts of up to {max(map(len, prompts))} tokens exceed this "
                             f"context ({self.n_seq} x {self.n_ctx_seq})")
        self._ctx.kv_cache_clear()
        return self._decode([(list(p), 0) for p in prompts])

    def greedy(self, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
        """Exactly `new_tokens` greedy tokens per prompt (end-of-sequence does not stop a row), every
        step one llama_decode call over all rows."""
        last = self.prefill(prompts)
        out: list[list[int]] = [[] for _ in prompts]
        for i in range(new_tokens):
            step = [int(x) for x in last.argmax(axis=1)]
            for row, tok in zip(out, step):
                row.append(tok)
            if i + 1 < new_tokens:
                last = self._decode([([tok], len(p) + i) for p, tok in zip(prompts, step)])
        return out


def put(b, slot: int, token: int, pos: int, seq: int, wanted: bool) -> None:
    """Token `token` of sequence `seq` at position `pos` into slot `slot` of a llama_batch; `wanted`:
    llama.cpp keeps its logits."""
    b.token[slot] = int(token)
    b.pos[slot] = pos
    b.seq_id[slot][0] = seq
    b.n_seq_id[slot] = 1
    b.logits[slot] = wanted


def output_logits(ctx, n_out: int, n_vocab: int) -> np.ndarray:
    """The logits of the last decode's `n_out` wanted tokens, in batch order, [n_out, vocab] float32
    (copied: the next decode overwrites llama.cpp's buffer)."""
    return np.ctypeslib.as_array(ctx.get_logits(), shape=(n_out * n_vocab,)).reshape(n_out, n_vocab).copy()


def sized(n_tokens: int, limit: int) -> int:
    """The per-sequence context for `n_tokens`, rounded up to CTX_STEP, at most `limit` (the model's)."""
    if n_tokens > limit:
        raise ValueError(f"{n_tokens} tokens exceed llama.cpp's context of {limit}")
    return min(limit, -(-n_tokens // CTX_STEP) * CTX_STEP)
