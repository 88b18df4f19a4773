"""Load an encoder folder as quantbench.encoder.quantize wrote it, through the library of its
method, whatever its modality (AutoModel: no tokenizer needed); returns the kernel that runs."""
from __future__ import annotations


def load_encoder(folder: str, method: dict, device: str, route: str | None = None):
    """(model in eval mode, kernel name)."""
    from transformers import AutoModel

    backend, params = method["backend"], method["params"]
    if backend == "none":
        from quantbench.modelio import torch_dtype

        model = AutoModel.from_pretrained(folder, dtype=torch_dtype(params["dtype"]), device_map=device)
        kernel = f"torch-{params['dtype']}"
    elif backend == "bnb":
        from quantbench.backends.bnb import disable_cpu_bf16_fast_path

        model = AutoModel.from_pretrained(folder, device_map=device)
        if device == "cpu":
            disable_cpu_bf16_fast_path(model)
        kernel = f"bnb-{'int8' if params['bits'] == 8 else params['quant_type']}-{device}"
    elif backend == "gptq" and route == "transformers-gptqconfig":
        from quantbench.backends.gptq import kernel_names

        model = AutoModel.from_pretrained(folder, device_map=device)
        kernel = "+".join(kernel_names(model))
    elif backend == "gptq":
        from quantbench import gptqmodel_run

        gptqmodel_run.environment()
        from gptqmodel import GPTQModel

        from quantbench.backends.gptq import KERNELS, kernel_names

        model = GPTQModel.load(folder, device=device, backend=KERNELS[params["kernel"]][0]).model
        kernel = "+".join(kernel_names(model))
    else:
        raise ValueError(f"backend {backend!r} has no encoder path; allowed: none, bnb, gptq")
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
