"""A GGUF file run by llama.cpp (through llama-cpp-python), measured as the artifact a user ships.

LlamaCppModel answers the few calls the stages make of a transformers causal LM: a forward pass
returning logits, greedy generation with the KV cache, and `config`. Tokens go in and come out as
ids: the text is tokenized once by the model folder's Hugging Face tokenizer, whose ids are the
GGUF vocabulary's (llama.cpp's converter copies that vocabulary), so every method is scored on the
same token sequences.

llama.cpp itself is driven by quantbench.llamacpp_engine (in this process) or quantbench.llamacpp_worker
(the same engine in a process without torch, for a model offloaded to the GPU).
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

from quantbench.llamacpp_engine import SETUP_HINT, LlamaCppEngine, gpu_offload_missing  # noqa: F401 - the backend asks it here
from quantbench.llamacpp_worker import WorkerEngine
from quantbench.loaded_model import WeightsMB
from quantbench.unsupported import Unsupported

GGUF_FILE = "model.gguf"
# Where scripts/setup-llamacpp.sh puts llama.cpp's converter (it is in the sdist, not the wheel);
# QB_LLAMACPP_CONVERTER_DIR names another place (a machine whose Python prefix is read-only).
CONVERTER_DIR = Path(os.environ.get("QB_LLAMACPP_CONVERTER_DIR") or Path(sys.prefix) / "share" / "llama-cpp-convert")
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


class LlamaCppModel:
    """A GGUF file loaded by llama.cpp, answering in torch tensors. Its llama.cpp calls go to a
    LlamaCppEngine: in this process on the CPU, in a worker process that never imports torch when layers
    are offloaded to the GPU (llamacpp_worker says why); `process` chooses otherwise ("inline", "worker")."""

    # the benchmark records larger batches as unsupported, with this reason; each row of a batch holds
    # its own KV cache in the one context, so the cap bounds that context's memory
    max_batch_size = 64
    batch_reason = "llama.cpp decodes at most 64 sequences together here (LlamaCppModel.max_batch_size)"

    def __init__(self, folder: str | Path, n_threads: int, n_ctx: int, n_gpu_layers: int = 0,
                 process: str | None = None, **llama_args):
        """`llama_args`: further llama_cpp.Llama arguments, or other values for its batch (n_batch: the
        whole context at once by default)."""
        from transformers import AutoConfig

        self.folder = Path(folder)
        self.config = AutoConfig.from_pretrained(self.folder)
        self.n_threads = n_threads
        self.n_gpu_layers = n_gpu_layers
        self.process = process or ("worker" if n_gpu_layers else "inline")
        if self.process not in PROCESSES:
            raise ValueError(f"process: {self.process!r}; allowed: {', '.join(PROCESSES)}")
        self.engine = PROCESSES[self.process](str(self.folder / GGUF_FILE), n_threads, n_ctx, n_gpu_layers,
                                              **llama_args)
        self.n_ctx, self.n_vocab = self.engine.n_ctx, self.engine.n_vocab
        if self.n_vocab != self.config.vocab_size:
            self.close()
            raise ValueError(f"{self.folder / GGUF_FILE}: vocabulary of {self.n_vocab} tokens, but config.json "
                             f"says {self.config.vocab_size}")
        summary = tensor_summary(self.folder / GGUF_FILE)
        self.file_weights_mb = summary["tensor_bytes"] / 2**20
        self.decode_weights_mb = summary["decode_bytes"] / 2**20
        self.embedding_head_mb = summary["embedding_head_bytes"] / 2**20
        self.body_mb = (summary["tensor_bytes"] - summary["embedding_head_bytes"]) / 2**20
        self.device = torch.device("cpu")

    @property
    def _llm(self):
        """llama-cpp-python's `Llama`, for code that reaches into it: in this process only."""
        if self.process != "inline":
            raise RuntimeError("llama.cpp runs in a worker process here: its Llama object is not in this one")
        return self.engine.llm

    # --- llama.cpp calls, in token ids and numpy logits ----------------------------------------------
    def logits(self, tokens: list[int], keep_last: int | None = None) -> np.ndarray:
        return self.engine.logits(list(tokens), len(tokens) if keep_last is None else keep_last)

    def greedy(self, prompt: list[int], new_tokens: int) -> list[int]:
        """Exactly `new_tokens` greedy tokens (end-of-sequence does not stop it), KV cache on."""
        return self.engine.greedy(list(prompt), new_tokens)

    def window_scores(self, ids: torch.Tensor, topk_ids: torch.Tensor) -> dict:
        """quantbench.distribution's per-window scores, computed by the engine (in its worker process
        when there is one) from logits that never leave it: LlamaCppEngine.window_scores."""
        out = self.engine.window_scores(ids.tolist(), topk_ids.numpy())
        return {k: torch.from_numpy(v) for k, v in out.items()}

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
            last = self.engine.prefill_batch(self._rows(input_ids, attention_mask))
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
            new = self.engine.greedy_batch(rows, max_new_tokens)
        return torch.cat([input_ids, torch.tensor(new, dtype=input_ids.dtype)], dim=1)

    def eval(self):
        return self

    def close(self) -> None:
        """Frees llama.cpp's model now (and ends its worker), not in a finalizer at interpreter exit,
        where llama-cpp-python's bindings may already be gone."""
        self.engine.close()

    def file_weights(self) -> WeightsMB:
        """Its weights as the file's tensors hold them (quantbench.memory counts a torch model's the same way)."""
        return WeightsMB(self.file_weights_mb, self.body_mb, self.embedding_head_mb, self.decode_weights_mb)

    def info(self) -> dict:
        return {"kernel": "llama.cpp-cuda" if self.n_gpu_layers else "llama.cpp-cpu", "n_threads": self.n_threads,
                "n_ctx": self.n_ctx, "process": self.process, **self.engine.info()}


PROCESSES = {"inline": LlamaCppEngine, "worker": WorkerEngine}
