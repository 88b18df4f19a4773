"""What an encoder takes in, told by transformers itself: the main input of its AutoModel class
(`input_ids` for text, `pixel_values` for images, `input_values` for raw audio), and synthetic
inputs of that kind for encoders with random weights, which no real input would make meaningful."""
from __future__ import annotations

import torch

# main_input_name of the AutoModel class -> modality
MODALITIES = {"input_ids": "text", "pixel_values": "vision", "input_values": "audio"}
# One second of audio at 16 kHz, the rate of wav2vec2's feature extractors (Wav2Vec2FeatureExtractor
# defaults to sampling_rate 16000).
AUDIO_SAMPLES = 16000


def model_class(config):
    """The AutoModel class transformers maps this config to."""
    from transformers import AutoModel

    mapping = AutoModel._model_mapping
    if type(config) not in mapping:
        raise ValueError(f"model_type {config.model_type!r} has no AutoModel class in transformers")
    return mapping[type(config)]


def main_input(config) -> str:
    return model_class(config).main_input_name


def of_config(config) -> str:
    """'text', 'vision' or 'audio'; ValueError naming the input for any other kind."""
    name = main_input(config)
    if name not in MODALITIES:
        raise ValueError(f"model_type {config.model_type!r} takes {name!r}; allowed inputs: "
                         + ", ".join(f"{k} ({v})" for k, v in MODALITIES.items()))
    return MODALITIES[name]


def of_folder(folder: str) -> str:
    from transformers import AutoConfig

    return of_config(AutoConfig.from_pretrained(folder))


def architecture_name(config) -> str:
    """How the architecture is named in transformers (ViT, Wav2Vec2, Bert): its config class."""
    return type(config).__name__.removesuffix("Config")


def synthetic_inputs(config, batch: int, seed: int) -> dict[str, torch.Tensor]:
    """One batch of standard-normal inputs of the model's own kind and shape: images of the
    configured size and channels, or one second of audio samples. For random-weight encoders, which
    answer whether a scheme runs, not how well."""
    g = torch.Generator().manual_seed(seed)
    name = main_input(config)
    if name == "pixel_values":
        shape = (batch, config.num_channels, config.image_size, config.image_size)
    elif name == "input_values":
        shape = (batch, AUDIO_SAMPLES)
    else:
        raise ValueError(f"no synthetic input for {name!r} (model_type {config.model_type!r}); "
                         "allowed: pixel_values (vision), input_values (audio)")
    return {name: torch.randn(*shape, generator=g)}
