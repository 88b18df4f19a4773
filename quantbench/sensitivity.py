"""Which layers hurt: the KL against the baseline when one group of linear layers is quantized and
every other layer keeps its full-precision weights.

The quantized layers are the real ones a method's quantize job wrote (its kernel runs them), moved
one group at a time into the baseline model. A group is a decoder block (all its projections), a
projection kind across blocks (every v_proj), or one cell (block x projection). GPTQ calibrates
each layer on the outputs of the layers before it as quantized; moved alone, a layer meets
full-precision inputs instead, which is the question asked here ("this layer's damage alone"),
not the damage it does inside the fully quantized model (the row `all` gives that one).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from quantbench import distribution
from quantbench.layer_groups import FAMILIES, group_name, units_of

__all__ = ["FAMILIES", "groups", "linear_units", "measure", "reference_slice", "swapped"]


def linear_units(model: nn.Module) -> dict[str, tuple[int, str]]:
    """Every linear layer inside a decoder block: module name -> (block index, projection kind).
    The embedding and the output head are outside blocks and stay unquantized here, as they do in
    every backend's quantized model."""
    return units_of(name for name, module in model.named_modules() if isinstance(module, nn.Linear))


def groups(units: dict[str, tuple[int, str]], families: list[str], kinds: list[str] | None = None) -> dict[str, dict]:
    """Group name -> {family, modules}, in block then projection order; plus `all` (every unit).
    kinds: only these projection kinds (None: all)."""
    if kinds:
        units = {n: u for n, u in units.items() if u[1] in kinds}
        if not units:
            raise ValueError(f"sensitivity.kinds {kinds} match no linear layer of the model")
    out: dict[str, dict] = {}
    for family in families:
        for name, (block, kind) in units.items():
            g = out.setdefault(group_name(family, block, kind), {"family": family, "block": None, "kind": None,
                                                                 "modules": []})
            g["modules"].append(name)
            if family != "projection":
                g["block"] = block
            if family != "block":
                g["kind"] = kind
    out["all"] = {"family": "all", "block": None, "kind": None, "modules": list(units)}
    return out


class _AsDtype(nn.Module):
    """A quantized layer placed in a model of another dtype (a 16-bit GPTQ layer in a float32 model
    on CUDA): its input is cast to the layer's dtype and its output back."""

    def __init__(self, layer: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.layer, self.dtype = layer, dtype

    def forward(self, x):
        return self.layer(x.to(self.dtype)).to(x.dtype)


def _compute_dtype(layer: nn.Module) -> torch.dtype | None:
    for t in list(layer.parameters()) + list(layer.buffers()):
        if t.is_floating_point():
            return t.dtype
    return None


@contextmanager
def swapped(model: nn.Module, quantized: nn.Module, modules: list[str]):
    """`model` with the named layers replaced by `quantized`'s, restored on exit."""
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    originals = {name: model.get_submodule(name) for name in modules}
    try:
        for name in modules:
            layer = quantized.get_submodule(name)
            layer_dtype = _compute_dtype(layer)
            model.set_submodule(name, _AsDtype(layer, layer_dtype) if layer_dtype not in (None, dtype) else layer)
        yield model
    finally:
        for name, layer in originals.items():
            model.set_submodule(name, layer)


def weights_of(model: nn.Module, modules: list[str]) -> int:
    return sum(model.get_submodule(n).weight.numel() for n in modules)


def measure(model: nn.Module, quantized: nn.Module, group_map: dict[str, dict], reference: dict,
            windows: torch.Tensor, device: str, batch_size: int, progress=None) -> list[dict]:
    """One row per group: KL mean with its 95% interval, top-1 agreement, perplexity ratio, the
    number of weights the group holds."""
    rows = []
    for i, (name, g) in enumerate(group_map.items()):
        with swapped(model, quantized, g["modules"]):
            m = distribution.compare_model(reference, model, windows, device, batch_size, on_device=True)
        rows.append({"group": name, "family": g["family"], "block": g["block"], "kind": g["kind"],
                     "modules": len(g["modules"]), "weights": weights_of(model, g["modules"]),
                     "kl_mean": m["kl_mean"], "kl_mean_ci95": m["kl_mean_ci95"],
                     "top1_agreement": m["top1_agreement"], "perplexity_ratio": m["perplexity_ratio"]})
        if progress:
            progress(i + 1, len(group_map), rows[-1])
    return rows


def reference_slice(reference: dict, tokens: int) -> tuple[dict, torch.Tensor]:
    """The first windows of the baseline's reference that hold `tokens` tokens (at least one)."""
    windows = reference["windows"]
    n = max(1, min(len(windows), tokens // windows.shape[1]))
    return {k: v[:n] for k, v in reference["summary"].items()}, windows[:n]
