"""A GGUF file run by llama.cpp (through llama-cpp-python), measured as the artifact a user ships.

LlamaCppModel answers the few calls the stages make of a transformers causal LM: a forward pass
returning logits, greedy generation with the KV cache, and `config`. Tokens go in and come out as
ids: the text is tokenized once by the model folder's Hugging Face tokenizer, whose ids are the
GGUF vocabulary's (llama.cpp's converter copies that vocabulary), so every method is scored on the
same token sequences.

llama-cpp-python's high-level `Llama` keeps one sequence; its private `_ctx` and `_batch` are used
to ask for logits at chosen positions only (llama-cpp-python 0.3.36, pinned with the rest).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from quantbench.llamacpp_batch import BatchedContext, output_logits, put, sized
from quantbench.loaded_model import WeightsMB
from quantbench.unsupported import Unsupported

GGUF_FILE = "model.gguf"
# Where scripts/setup-llamacpp.sh puts llama.cpp's converter (it is in the sdist, not the wheel);
# QB_LLAMACPP_CONVERTER_DIR names another place (a machine whose Python prefix is read-only).
CONVERTER_DIR = Path(os.environ.get("QB_LLAMACPP_CONVERTER_DIR") or Path(sys.prefix) / "share" / "llama-cpp-convert")
SETUP_HINT = "install it with: bash scripts/setup-llamacpp.sh"
# scripts/setup-llamacpp.sh builds llama.cpp's CPU backend only; this builds the CUDA one (for Hopper).
CUDA_BUILD_HINT = ("for a CUDA build, run bash tools/gpu/build-llamacpp-cuda.sh --target DIR on a GPU node with "
                   "nvcc and put DIR first on PYTHONPATH")
# The methods' `offload` (quantbench.backends.gguf): how many layers llama.cpp puts on the GPU.
GPU_LAYERS = {"cpu": 0, "gpu": -1}  # -1: every layer, the output head included


def available() -> str | None:
    """Why llama.cpp cannot run here, or None."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as err:
        return f"llama-cpp-python is not installed ({err}); {SETUP_HINT}"
    if not (CONVERTER_DIR / "convert_hf_to_gguf.py").is_file():
        return f"llama.cpp's converter is missing ({CONVERTER_DIR}/convert_hf_to_gguf.py); {SETUP_HINT}"
    return None


def gpu_layers(params: dict) -> int:
    """llama.cpp's n_gpu_layers for a GGUF method's parameters: 0 (offload: cpu, the default) or -1."""
    return GPU_LAYERS[params.get("offload", "cpu")]


def gpu_offload_missing() -> str | None:
    """Why the installed llama.cpp cannot put layers on a GPU (a build without a GPU backend), or None."""
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        return None
    return (f"offload: 'gpu' needs llama.cpp built with a GPU backend, and the installed llama-cpp-python "
            f"{getattr(llama_cpp, '__version__', '?')} has none (llama_supports_gpu_offload() is False; "
            f"scripts/setup-llamacpp.sh builds the CPU backend only); {CUDA_BUILD_HINT}")


@contextlib.contextmanager
def captured_stderr():
    """llama.cpp's log, collected (a list of lines, filled on exit) and still written to stderr:
    llama-cpp-python routes it through a callback that writes to Python's sys.stderr, and what
    bypasses the callback goes to file descriptor 2; both are caught."""
    import io

    lines: list[str] = []
    sys.stderr.flush()
    saved, python_side = os.dup(2), io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            with contextlib.redirect_stderr(python_side):
                yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = python_side.getvalue() + tmp.read().decode(errors="replace")
            lines.extend(text.splitlines())
            sys.stderr.write(text)  # still in the job's log


def tensor_summary(path: str | Path) -> dict:
    """What the file holds: tensors per GGML type, bytes, and bits per weight of the transformer
    blocks' matrices (what the other backends' bits_per_weight counts: their linear layers; norms
    stay f32, and the embedding table is left out as it is for the other backends)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    types: dict[str, int] = {}
    total = weights2d = n2d = embedding = output = 0
    for t in reader.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        total += int(t.n_bytes)
        if t.name.startswith("blk.") and len([d for d in t.shape if d > 1]) == 2:
            weights2d += int(t.n_bytes)
            n2d += int(t.n_elements)
        if t.name == "token_embd.weight":
            embedding = int(t.n_bytes)
        if t.name == "output.weight":
            output = int(t.n_bytes)
    return {"tensor_types": dict(sorted(types.items())), "tensor_bytes": total,
            # the embedding table and the output head, as quantbench.memory.weights_split_mb splits a
            # torch model (a file without output.weight ties the head to token_embd)
            "embedding_head_bytes": embedding + output,
            "measured_bits_per_weight": 8 * weights2d / n2d if n2d else float("nan"),
            # a decode step gathers one row of the embedding table, unless the output head is tied to it
            "decode_bytes": total - (embedding if output else 0)}


def convert(src: str | Path, out_file: Path, outtype: str) -> list[str]:
    """llama.cpp's own converter, in a subprocess (it imports its vendored gguf-py first)."""
    import subprocess

    script = CONVERTER_DIR / "convert_hf_to_gguf.py"
    cmd = [sys.executable, str(script), str(src), "--outfile", str(out_file), "--outtype", outtype]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()][-3:]
        raise RuntimeError(f"llama.cpp's convert_hf_to_gguf.py failed on {src} (exit {proc.returncode}): "
                           + " | ".join(tail))
    return cmd


def quantize_file(src_file: Path, out_file: Path, ftype: int, threads: int,
                  embedding_type: int | None = None) -> list[str]:
    """llama_model_quantize; returns llama.cpp's log lines. `embedding_type` (a ggml_type) sets the
    token embedding's and output head's type instead of the one llama.cpp picks for `ftype`."""
    import llama_cpp

    qp = llama_cpp.llama_model_quantize_default_params()
    qp.ftype = ftype
    qp.nthread = threads
    if embedding_type is not None:
        qp.token_embedding_type = embedding_type
        qp.output_tensor_type = embedding_type
    with captured_stderr() as log:
        rc = llama_cpp.llama_model_quantize(str(src_file).encode(), str(out_file).encode(), ctypes.byref(qp))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize returned {rc} for {src_file}: " + " | ".join(log[-3:]))
    return log


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


class LlamaCppModel:
    """A GGUF file loaded by llama.cpp: one sequence through llama-cpp-python's `Llama`, several at once
    (a batched prefill or generate) through a second context on the same weights (llamacpp_batch)."""

    # the benchmark records larger batches as unsupported, with this reason; each row of a batch holds
    # its own KV cache in the one context, so the cap bounds that context's memory
    max_batch_size = 64
    batch_reason = "llama.cpp decodes at most 64 sequences together here (LlamaCppModel.max_batch_size)"

    def __init__(self, folder: str | Path, n_threads: int, n_ctx: int, n_gpu_layers: int = 0, **llama_args):
        """`llama_args`: further llama_cpp.Llama arguments, or other values for its batch (n_batch: the
        whole context at once by default)."""
        import llama_cpp
        from transformers import AutoConfig

        self.folder = Path(folder)
        self.config = AutoConfig.from_pretrained(self.folder)
        self.n_threads = n_threads
        self.n_gpu_layers = offload_checked(n_gpu_layers)
        self._llm = llama_cpp.Llama(str(self.folder / GGUF_FILE), n_ctx=n_ctx, n_threads=n_threads,
                                    n_threads_batch=n_threads, verbose=False, seed=0,
                                    **{"n_batch": n_ctx, **llama_args, **placement(n_gpu_layers)})
        self.n_ctx = self._llm.n_ctx()
        self.n_vocab = self._llm.n_vocab()
        if self.n_vocab != self.config.vocab_size:
            raise ValueError(f"{self.folder / GGUF_FILE}: vocabulary of {self.n_vocab} tokens, but config.json "
                             f"says {self.config.vocab_size}")
        summary = tensor_summary(self.folder / GGUF_FILE)
        self.file_weights_mb = summary["tensor_bytes"] / 2**20
        self.decode_weights_mb = summary["decode_bytes"] / 2**20
        self.embedding_head_mb = summary["embedding_head_bytes"] / 2**20
        self.body_mb = (summary["tensor_bytes"] - summary["embedding_head_bytes"]) / 2**20
        self.device = torch.device("cpu")
        self._batched = None  # llamacpp_batch.BatchedContext, opened by the first batch and kept

    def batched(self, n_seq: int, n_tokens: int):
        """A context for `n_seq` sequences of `n_tokens`; kept for the next call that fits, so that a
        benchmark cell's warm-up opens it and its timed repeats reuse it."""
        n_ctx_seq = sized(n_tokens, self.n_ctx)
        if self._batched is None or not self._batched.fits(n_seq, n_ctx_seq):
            if self._batched is not None:
                self._batched.close()
            self._batched = BatchedContext(self._llm, n_seq, n_ctx_seq)
        return self._batched

    # --- llama.cpp calls ---------------------------------------------------------------------------
    def _decode(self, tokens: list[int], keep_last: int) -> np.ndarray:
        """Run `tokens` from position 0 of an empty cache; logits of the last `keep_last`
        positions, [keep_last, vocab] float32."""
        if len(tokens) > self.n_ctx:
            raise ValueError(f"{len(tokens)} tokens exceed llama.cpp's context of {self.n_ctx}")
        ctx = self._llm._ctx
        ctx.kv_cache_clear()
        return self._append(tokens, 0, keep_last)

    def _append(self, tokens: list[int], n_past: int, keep_last: int) -> np.ndarray:
        ctx, batch = self._llm._ctx, self._llm._batch
        out, n = [], len(tokens)
        step = self._llm.n_batch
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

    def logits(self, tokens: list[int], keep_last: int | None = None) -> np.ndarray:
        return self._decode(list(tokens), len(tokens) if keep_last is None else keep_last)

    def greedy(self, prompt: list[int], new_tokens: int) -> list[int]:
        """Exactly `new_tokens` greedy tokens (end-of-sequence does not stop it), KV cache on."""
        last = self._decode(list(prompt), 1)[-1]
        out, pos = [], len(prompt)
        for i in range(new_tokens):
            tok = int(last.argmax())
            out.append(tok)
            if i + 1 < new_tokens:
                last = self._append([tok], pos, 1)[-1]
                pos += 1
        return out

    # --- the transformers calls the stages make ----------------------------------------------------
    @staticmethod
    def _rows(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> list[list[int]]:
        """Each row's tokens without its (left) padding."""
        if attention_mask is None:
            return input_ids.tolist()
        return [ids[m.bool()].tolist() for ids, m in zip(input_ids, attention_mask)]

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 use_cache: bool = False, logits_to_keep: int = 0, **_):
        if logits_to_keep == 1 and input_ids.shape[0] > 1:  # a batched prefill: every row in one call
            if input_ids.shape[0] > self.max_batch_size:
                raise Unsupported(self.batch_reason)
            rows = self._rows(input_ids, attention_mask)
            last = self.batched(len(rows), max(map(len, rows))).prefill(rows)
            return SimpleNamespace(logits=torch.from_numpy(last)[:, None, :])
        out = []
        for ids in self._rows(input_ids, attention_mask):
            logits = torch.from_numpy(self.logits(ids, logits_to_keep or len(ids)))
            pad = (logits_to_keep or input_ids.shape[1]) - logits.shape[0]
            out.append(torch.nn.functional.pad(logits, (0, 0, pad, 0)))  # left padding, as the input
        return SimpleNamespace(logits=torch.stack(out))

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 max_new_tokens: int = 20, use_cache: bool = True, do_sample: bool = False, **_):
        if do_sample:
            raise Unsupported("only greedy generation is implemented for llama.cpp models")
        if not use_cache:
            raise Unsupported("llama.cpp always decodes with its KV cache")
        if input_ids.shape[0] > self.max_batch_size:
            raise Unsupported(self.batch_reason)
        rows = self._rows(input_ids, attention_mask)
        if len(rows) == 1:
            new = [self.greedy(rows[0], max_new_tokens)]
        else:
            new = self.batched(len(rows), max(map(len, rows)) + max_new_tokens).greedy(rows, max_new_tokens)
        return torch.cat([input_ids, torch.tensor(new, dtype=input_ids.dtype)], dim=1)

    def eval(self):
        return self

    def file_weights(self) -> WeightsMB:
        """Its weights as the file's tensors hold them (quantbench.memory counts a torch model's the same way)."""
        return WeightsMB(self.file_weights_mb, self.body_mb, self.embedding_head_mb, self.decode_weights_mb)

    def info(self) -> dict:
        import llama_cpp

        # where llama.cpp ran: the layers it was asked to offload, and the backends its build has
        # (system_info lists the CPU's features, and a GPU backend's, e.g. "CUDA : ARCHS = 900", where built)
        return {"kernel": "llama.cpp-cuda" if self.n_gpu_layers else "llama.cpp-cpu", "n_threads": self.n_threads,
                "n_ctx": self.n_ctx, "n_gpu_layers": self.n_gpu_layers,
                "gpu_offload_supported": bool(llama_cpp.llama_supports_gpu_offload()),
                "llama_cpp_python": getattr(llama_cpp, "__version__", "?"),
                "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip()}
