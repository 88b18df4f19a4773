"""Load an encoder folder as quantbench.encoder.quantize wrote it, through the library of its
method, whatever its modality (AutoModel: no tokenizer needed); returns the kernel that runs."""
from __future__ import annotations

from quantbench.backends import get as get_backend
from quantbench.backends import having


def load_encoder(folder: str, method: dict, device: str, route: str | None = None):
    """(model in eval mode, kernel name)."""
    backend = get_backend(method["backend"])
    if not backend.encodes:
        raise ValueError(f"backend {method['backend']!r} has no encoder path; allowed: {', '.join(having('encodes'))}")
    model, kernel = backend.load_encoder(folder, method["params"], device, route)
    return model.eval(), kernel


def quantized_layers(model) -> int:
    """Linear layers a quantization library replaced (bitsandbytes' or GPTQModel's)."""
    kinds = []
    # Each conda env (envs/) holds one backend's library: count the layer classes that are there.
    try:
        import bitsandbytes as bnb

        kinds += [bnb.nn.Linear4bit, bnb.nn.Linear8bitLt]
    except ImportError:
        pass
    try:
        from gptqmodel.nn_modules.qlinear import BaseQuantLinear

        kinds.append(BaseQuantLinear)
    except ImportError:
        pass
    return sum(isinstance(m, tuple(kinds)) for m in model.modules())
