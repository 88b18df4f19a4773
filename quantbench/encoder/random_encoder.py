"""An encoder of a real transformers architecture (ViT, Wav2Vec2, ...) with random weights, built
here from the architecture's own config class: no vision or audio checkpoint is at hand offline,
and whether a scheme quantizes and runs an architecture does not depend on the weights' values.
Quality figures from such a model would mean nothing; the report gives none."""
from __future__ import annotations

from pathlib import Path

import torch

from quantbench.encoder import modality


def load_architecture(path: str | Path):
    """A transformers config from a config.json (keys starting with _ are comments)."""
    from quantbench.random_model import load_architecture as load

    return load(path)


def describe(config) -> dict:
    """What the report names the encoder by: its modality, transformers' class and model_type."""
    return {"modality": modality.of_config(config), "architecture": modality.architecture_name(config),
            "model_type": config.model_type, "main_input": modality.main_input(config)}


def build(out_dir: str | Path, architecture: str | Path, seed: int) -> dict:
    """Write a float32 model folder with weights drawn by transformers' own initialisation."""
    from transformers import AutoModel

    config = load_architecture(architecture)
    torch.manual_seed(seed)
    model = AutoModel.from_config(config, dtype=torch.float32)
    model.save_pretrained(out_dir)
    return {**describe(config), "parameters": sum(p.numel() for p in model.parameters()),
            "num_hidden_layers": config.num_hidden_layers, "hidden_size": config.hidden_size}
