"""What a backend's load() returns: the model, and what the stages need to know about it that the
model itself does not say (the runtime that scores it, the kernel that runs, how many sequences one
call takes, its weights where a file rather than torch tensors holds them). The stages read these
fields; none probes the model for attributes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Runtime = Literal["torch", "llama.cpp"]


@dataclass(frozen=True)
class WeightsMB:
    """A model's weights in MiB as quantbench.memory counts them: all of them, split into the body and
    the embedding/head, and what one decode step reads (quantbench.benchmark.weights_mb)."""
    weights_mb: float
    body_mb: float
    embedding_head_mb: float
    decode_mb: float


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # a torch module (transformers, GPTQModel, hqq, torchao) or quantbench.llamacpp.LlamaCppModel
    kernel: str  # the kernel that runs the quantized layers, as records name it
    runtime: Runtime = "torch"
    # the most sequences one call takes (None: any), and why no more: a larger batch is recorded as
    # unsupported with this reason
    batch_limit: int | None = None
    batch_reason: str | None = None
    # the weights counted from the file's tensors (a GGUF file run by llama.cpp); None: the model's
    # torch tensors hold them, and quantbench.memory counts those
    file_weights: WeightsMB | None = None
    details: dict = field(default_factory=dict)  # more the records keep about the load (e.g. GPTQModel's backend)

    @classmethod
    def of(cls, model, info: dict, **contract) -> LoadedModel:
        """From a load's record (its kernel first, then the details) and the contract's other fields."""
        return cls(model, info["kernel"], details={k: v for k, v in info.items() if k != "kernel"}, **contract)

    @property
    def info(self) -> dict:
        """The load as records keep it: the kernel and the details."""
        return {"kernel": self.kernel, **self.details}
