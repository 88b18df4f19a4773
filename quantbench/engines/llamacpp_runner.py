"""llama.cpp as an engine (quantbench.engines.cells): a GGUF variant's folder, its rows decoded together in
one llama.cpp context (quantbench.llamacpp_batch), on the CPU or, with the method's `offload: gpu`, on the
GPU through the worker process (quantbench.llamacpp_worker)."""
from __future__ import annotations

from quantbench.llamacpp import LlamaCppModel


class LlamaCppRunner:
    name = "llamacpp"

    def __init__(self, folder: str, threads: int, n_gpu_layers: int, n_ctx: int):
        self.model = LlamaCppModel(folder, threads, n_ctx, n_gpu_layers)
        self.vocab_size = self.model.n_vocab
        self.max_batch = self.model.max_batch_size

    def generate(self, rows: list[list[int]], new_tokens: int) -> list[int]:
        if len(rows) > self.max_batch:
            raise ValueError(f"{len(rows)} rows at once; {self.model.batch_reason}")
        return [len(out) for out in self.model.engine.greedy_batch(rows, new_tokens)]

    def info(self) -> dict:
        return {"engine": self.name, **self.model.info()}

    def close(self) -> None:
        self.model.close()
