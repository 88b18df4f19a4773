"""Quantize an encoder folder with one method through the method's own library, or say why that
library refused: each backend is tried for real on the encoder (AutoModel, not a causal-LM class),
whatever its modality (text, vision, audio: quantbench.encoder.modality)."""
from __future__ import annotations

from pathlib import Path

from quantbench.backends import UNQUANTIZED, having
from quantbench.backends import get as get_backend
from quantbench.encoder import modality
from quantbench.library_refusal import Unsupported

UNSUPPORTED_FILE = "unsupported.json"


def _tokenizer(src: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(src)


def quantize(src: str, dst: Path, method: dict, device: str, calibration: list, seq_len: int) -> dict:
    """Write the quantized encoder (with its tokenizer, for text) to dst; raise Unsupported when the
    backend's library refuses the encoder. GPTQ calibrates on `calibration`: the configured sentences
    for a text encoder, dicts of input tensors (modality.synthetic_inputs) for another modality."""
    backend, params = method["backend"], method["params"]
    text = modality.of_folder(src) == "text"
    try:
        if not get_backend(backend).encodes:
            raise ValueError(f"backend {backend!r} has no encoder path; allowed: {', '.join(having('encodes'))}")
        extra = get_backend(backend).quantize_encoder(src, dst, params, device, calibration, seq_len, text)
    except (ValueError, TypeError, NotImplementedError, KeyError, AttributeError, RuntimeError) as err:
        if backend == UNQUANTIZED:
            raise  # the unquantized model must load: a failure there is ours, not a library's limit
        raise Unsupported(err) from err
    if text:
        _tokenizer(src).save_pretrained(dst)
    return extra
