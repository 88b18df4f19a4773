"""Sentence embeddings: mean of the last hidden states over real tokens (attention mask), the
pooling all-MiniLM-L6-v2 and most sentence-transformers encoders use."""
from __future__ import annotations

import torch


def load(folder: str, method: dict, device: str, route: str | None = None):
    """The encoder in `folder` as quantize() wrote it, with its tokenizer, and the kernel that runs."""
    from transformers import AutoModel, AutoTokenizer

    backend, params = method["backend"], method["params"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
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
    return model.eval(), tokenizer, kernel


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
