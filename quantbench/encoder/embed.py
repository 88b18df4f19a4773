"""Sentence embeddings: mean of the last hidden states over real tokens (attention mask), the
pooling all-MiniLM-L6-v2 and most sentence-transformers encoders use."""
from __future__ import annotations

import torch

from quantbench.encoder import loading


def load(folder: str, method: dict, device: str, route: str | None = None):
    """The text encoder in `folder` as quantize() wrote it, with its tokenizer, and the kernel that runs."""
    from transformers import AutoTokenizer

    model, kernel = loading.load_encoder(folder, method, device, route)
    return model, AutoTokenizer.from_pretrained(folder), kernel


@torch.inference_mode()
def embed_batch(model, tokenizer, texts: list[str], max_length: int, device: str) -> torch.Tensor:
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
    hidden = model(**enc).last_hidden_state.float()
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def embed(model, tokenizer, texts: list[str], batch_size: int, max_length: int, device: str) -> torch.Tensor:
    """One float32 row per text, on the CPU."""
    rows = [embed_batch(model, tokenizer, texts[i:i + batch_size], max_length, device).cpu()
            for i in range(0, len(texts), batch_size)]
    return torch.cat(rows)
