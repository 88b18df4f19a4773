"""How close a quantized encoder's sentence embeddings stay to the unquantized model's."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def nearest_neighbours(emb: torch.Tensor) -> torch.Tensor:
    """Index of each row's most cosine-similar other row."""
    unit = F.normalize(emb.double(), dim=1)
    sims = unit @ unit.T
    sims.fill_diagonal_(-math.inf)
    return sims.argmax(1)


def compare(variant: torch.Tensor, reference: torch.Tensor) -> dict:
    """Per-sentence cosine to the reference embedding (mean, its standard error, p5, min) and the
    share of sentences whose nearest neighbour in the set is the reference's (with its binomial
    standard error)."""
    if variant.shape != reference.shape:
        raise ValueError(f"embeddings of shape {tuple(variant.shape)} against reference {tuple(reference.shape)}")
    n = variant.shape[0]
    cos = F.cosine_similarity(variant.double(), reference.double(), dim=1)
    agree = (nearest_neighbours(variant) == nearest_neighbours(reference)).double()
    p = agree.mean().item()
    return {"sentences": n,
            "cosine_mean": cos.mean().item(),
            "cosine_mean_stderr": (cos.std().item() / math.sqrt(n)) if n > 1 else 0.0,
            "cosine_p5": torch.quantile(cos, 0.05).item(),
            "cosine_min": cos.min().item(),
            "nn_agreement": p,
            "nn_agreement_stderr": math.sqrt(p * (1 - p) / n)}
