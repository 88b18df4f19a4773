"""The unquantized baseline: the model as trained, in the configured floating-point dtype."""
from __future__ import annotations

from pathlib import Path

from quantbench.backends.base import Backend, register
from quantbench.loaded_model import LoadedModel

SPEC = {"dtype": ["float32", "float16", "bfloat16"]}
DEFAULTS = {"dtype": "float32"}
BITS = {"float32": 32, "float16": 16, "bfloat16": 16}


@register("none")
class Unquantized(Backend):
    SPEC = SPEC
    DEFAULTS = DEFAULTS
    DESCRIPTIONS = {"dtype": "floating-point type the model is stored and run in"}
    LABEL = "unquantized"
    ENGINES = {"vllm": "the float checkpoint"}
    COLOR = "#3a3a3a"
    MARKER = "o"
    ENV = "bnb"  # the baseline loads with plain transformers, which bitsandbytes' env holds
    QUANTIZE_MINUTES = (10, 3)

    def describe(self, params: dict) -> str:
        return f"unquantized {params['dtype']}"

    def needs_cuda(self, params: dict) -> str | None:
        return None

    def bits_per_weight(self, params: dict) -> float:
        return float(BITS[params["dtype"]])

    def quantize(self, src: str, dst: Path, params: dict, ctx) -> dict:
        from quantbench.modelio import link_tree, load_causal_lm, read_meta, torch_dtype

        try:
            same = read_meta(src)["params"].get("dtype") == params["dtype"]
        except (OSError, KeyError):  # a hub id or a folder quantbench did not write
            same = False
        if same:  # already in this dtype: the same bytes under a second name
            link_tree(src, dst)
            return {"linked_from": str(src)}
        model, tokenizer = load_causal_lm(src, ctx.device, dtype=torch_dtype(params["dtype"]))
        model.save_pretrained(dst)
        tokenizer.save_pretrained(dst)
        return {}

    def quantize_encoder(self, src: str, dst: Path, params: dict, device: str, calibration: list, seq_len: int,
                         text: bool) -> dict:
        from transformers import AutoModel

        from quantbench.modelio import torch_dtype

        model = AutoModel.from_pretrained(src, dtype=torch_dtype(params["dtype"]), device_map=device)
        model.save_pretrained(dst)
        return {}

    def load_encoder(self, folder: str, params: dict, device: str, route: str | None = None):
        from transformers import AutoModel

        from quantbench.modelio import torch_dtype

        model = AutoModel.from_pretrained(folder, dtype=torch_dtype(params["dtype"]), device_map=device)
        return model, f"torch-{params['dtype']}"

    def load(self, path: str, params: dict, ctx):
        from quantbench.modelio import load_causal_lm, torch_dtype

        model, _ = load_causal_lm(path, ctx.device, dtype=torch_dtype(params["dtype"]))
        return LoadedModel(model, f"torch-{params['dtype']}")
