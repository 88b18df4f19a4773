"""llama.cpp's side of a GGUF model: the loaded weights and what the stages ask of them, in token ids and
numpy logits. Imports neither torch nor transformers, so that it can run in a process of its own
(quantbench.llamacpp_worker): the CUDA builds of llama.cpp made on GPU nodes crashed (SIGSEGV, in the
tokenizer's set-up of every model load) in any process that had imported PyTorch's CUDA build, or numpy
before llama.cpp's libraries, and ran in one that had done neither (H100 nodes,
results/reference/h100/smollm2-135m-cuda-gguf-gpu/README.md).

llama-cpp-python's high-level `Llama` keeps one sequence; its private `_ctx` and `_batch` are used to ask
for logits at chosen positions only (llama-cpp-python 0.3.36, pinned with the rest); several sequences
at once go through llamacpp_batch's second context on the same weights.
"""
from __future__ import annotations

import time

import numpy as np

from quantbench.llamacpp_batch import BatchedContext, output_logits, put, sized

SETUP_HINT = "install it with: bash scripts/setup-llamacpp.sh"
# scripts/setup-llamacpp.sh builds llama.cpp's CPU backend only; this builds the CUDA one (for Hopper).
CUDA_BUILD_HINT = ("for a CUDA build, run bash tools/gpu/build-llamacpp-cuda.sh --target DIR on a GPU node with "
                   "nvcc and put DIR first on PYTHONPATH")


def log_sum_exp(logits: np.ndarray) -> np.ndarray:
    """log(sum(exp)) over the last axis, [..., 1], in float32 as torch's log_softmax computes it (no torch
    here: a worker process must not load it, quantbench/llamacpp_worker.py)."""
    peak = logits.max(-1, keepdims=True)
    return np.log(np.exp(logits - peak).sum(-1, keepdims=True)) + peak


def gpu_offload_missing() -> str | None:
    """Why the installed llama.cpp cannot put layers on a GPU (a build without a GPU backend), or None."""
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        return None
    return (f"offload: 'gpu' needs llama.cpp built with a GPU backend, and the installed llama-cpp-python "
            f"{getattr(llama_cpp, '__version__', '?')} has none (llama_supports_gpu_offload() is False; "
            f"scripts/setup-llamacpp.sh builds the CPU backend only); {CUDA_BUILD_HINT}")


def offload_checked(n_gpu_layers: int) -> int:
    """n_gpu_layers, once this llama.cpp is known to honour it: a build without a GPU backend would
    keep every layer on the CPU without a word, and the job's records would call that a GPU run."""
    if n_gpu_layers:
        why = gpu_offload_missing()
        if why:
            raise RuntimeError(why)
    return n_gpu_layers


def placement(n_gpu_layers: int) -> dict:
    """llama_cpp.Llama's arguments that place the work: the layers on the GPU, or everything on the
    CPU. With 0 layers a GPU build would still send large batches' matrix products to the GPU
    (op_offload, on by default); off, a CUDA build runs offload: cpu as the CPU build does (a CPU build
    has nothing to offload to, so its runs are unchanged)."""
    if n_gpu_layers:
        return {"n_gpu_layers": n_gpu_layers}
    return {"n_gpu_layers": 0, "op_offload": False}


class LlamaCppEngine:
    """A GGUF file loaded by llama.cpp: one sequence through `Llama`, several through a BatchedContext."""

    def __init__(self, gguf_file: str, n_threads: int, n_ctx: int, n_gpu_layers: int = 0, **llama_args):
        """`llama_args`: further llama_cpp.Llama arguments, or other values for its batch (n_batch: the
        whole context at once by default)."""
        import llama_cpp

        self.n_gpu_layers = offload_checked(n_gpu_layers)
        self.llm = llama_cpp.Llama(gguf_file, n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                                   verbose=False, seed=0,
                                   **{"n_batch": n_ctx, **llama_args, **placement(n_gpu_layers)})
        self.n_ctx = self.llm.n_ctx()
        self.n_vocab = self.llm.n_vocab()
        self._batched = None  # opened by the first batch and kept

    def sizes(self) -> dict:
        return {"n_ctx": self.n_ctx, "n_vocab": self.n_vocab}

    def _batched_for(self, n_seq: int, n_tokens: int) -> BatchedContext:
        """A context for `n_seq` sequences of `n_tokens`; kept for the next call that fits, so that a
        benchmark cell's warm-up opens it and its timed repeats reuse it."""
        n_ctx_seq = sized(n_tokens, self.n_ctx)
        if self._batched is None or not self._batched.fits(n_seq, n_ctx_seq):
            if self._batched is not None:
                self._batched.close()
            self._batched = BatchedContext(self.llm, n_seq, n_ctx_seq)
        return self._batched

    def clear(self) -> None:
        self.llm._ctx.kv_cache_clear()

    def append(self, tokens: list[int], n_past: int, keep_last: int) -> np.ndarray:
        """Decode `tokens` after `n_past` cached ones; the logits of the last `keep_last`, [keep_last, vocab]."""
        ctx, batch = self.llm._ctx, self.llm._batch
        out, n = [], len(tokens)
        step = self.llm.n_batch
        for start in range(0, n, step):
            chunk = tokens[start:start + step]
            b = batch.batch
            b.n_tokens = len(chunk)
            wanted = 0
            for i, tok in enumerate(chunk):
                want = start + i >= n - keep_last
                put(b, i, tok, n_past + start + i, 0, want)
                wanted += want
            ctx.decode(batch)
            if wanted:
                out.append(output_logits(ctx, wanted, self.n_vocab))
        return np.concatenate(out) if out else np.empty((0, self.n_vocab), np.float32)

    def tokenize(self, text: str) -> list[int]:
        """The file's own tokenizer, no beginning-of-sequence token added."""
        return self.llm.tokenize(text.encode(), add_bos=False)

    def logits(self, tokens: list[int], keep_last: int) -> np.ndarray:
        """`tokens` from position 0 of an empty cache; the logits of the last `keep_last` positions."""
        if len(tokens) > self.n_ctx:
            raise ValueError(f"{len(tokens)} tokens exceed llama.cpp's context of {self.n_ctx}")
        self.clear()
        return self.append(list(tokens), 0, keep_last)

    def window_scores(self, tokens: list[int], topk_ids: np.ndarray) -> dict:
        """What a comparison against a reference needs of one held-out window, computed here, beside
        the logits: at every position but the last, the log-probs at the reference's top-k token ids
        ([n-1, k]), the top token and the log-prob of the actual next token. A window's full-vocabulary
        logits are 100 MB (512 x 49 152 floats); these are 0.5 MB, which is what a worker process sends."""
        logits = self.logits(list(tokens), len(tokens))[:-1]
        lse = log_sum_exp(logits)  # only the gathered entries become log-probs: no [n, vocab] copy
        targets = np.asarray(tokens[1:], dtype=np.int64)
        return {"topk_logprobs": np.take_along_axis(logits, topk_ids.astype(np.int64), axis=-1) - lse,
                "argmax": logits.argmax(-1),
                "target_logprob": logits[np.arange(len(targets)), targets] - lse[:, 0]}

    def greedy(self, prompt: list[int], new_tokens: int) -> list[int]:
        """Exactly `new_tokens` greedy tokens (end-of-sequence does not stop it), KV cache on."""
        last = self.logits(list(prompt), 1)[-1]
        out, pos = [], len(prompt)
        for i in range(new_tokens):
            tok = int(last.argmax())
            out.append(tok)
            if i + 1 < new_tokens:
                last = self.append([tok], pos, 1)[-1]
                pos += 1
        return out

    def prefill_batch(self, rows: list[list[int]]) -> np.ndarray:
        """Every row in one call; each row's last logits, [len(rows), vocab]."""
        return self._batched_for(len(rows), max(map(len, rows))).prefill(rows)

    def greedy_batch(self, rows: list[list[int]], new_tokens: int) -> list[list[int]]:
        return self._batched_for(len(rows), max(map(len, rows)) + new_tokens).greedy(rows, new_tokens)

    def timed_decode(self, prompt: list[int], steps: int) -> dict:
        """Fill an empty cache with `prompt`, then `steps` greedy one-token decode calls, each timed here, in
        the process that runs llama.cpp (the KV-cache stage's speed at long context)."""
        last = self.logits(list(prompt), 1)[-1]  # the prompt's last row only: a long prompt's rows are large
        pos, times = len(prompt), []
        for _ in range(steps):
            tok = int(last.argmax())
            t0 = time.perf_counter()
            last = self.append([tok], pos, 1)[-1]
            times.append(time.perf_counter() - t0)
            pos += 1
        return {"step_s": times, "state_bytes": self.state_bytes(), "tokens_in_cache": pos}

    def state_bytes(self) -> int:
        """Bytes of sequence 0's state as llama.cpp serializes it (its KV cells in their stored type)."""
        import llama_cpp

        return int(llama_cpp.llama_state_seq_get_size(self.llm._ctx.ctx, 0))

    def info(self) -> dict:
        """Where llama.cpp ran: the layers it was asked to offload, and the backends its build has
        (system_info lists the CPU's features, and a GPU backend's, e.g. "CUDA : ARCHS = 900", where built)."""
        import llama_cpp

        return {"n_gpu_layers": self.n_gpu_layers,
                "gpu_offload_supported": bool(llama_cpp.llama_supports_gpu_offload()),
                "llama_cpp_python": getattr(llama_cpp, "__version__", "?"),
                "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip()}

    def close(self) -> None:
        if self._batched is not None:
            self._batched.close()
            self._batched = None
        self.llm.close()
