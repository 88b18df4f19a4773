"""GPTQModel's Marlin GEMM as a torch custom op, so torch.compile can trace a decode step through it.

GPTQModel calls Marlin through a Python-level extension handle that dynamo cannot see into: every
Marlin linear breaks the compiled graph, each of the ~40 small ops per layer around it (norms,
rotary, residual adds, SiLU*mul) then runs as its own kernel, and reduce-overhead records one CUDA
graph per piece. Declared as a custom op with a fake (shape-only) implementation, the GEMM becomes
one opaque node: inductor fuses what lies between the GEMMs and one CUDA graph replays the step.

`patch(model)` routes every Marlin layer that uses the plain (unpadded) path through the op; the
kernel and its arguments are exactly those of GPTQModel's own forward, so tokens must not change
(decode_checks.fast_matches_eager checks this for every fast cell).
"""
from __future__ import annotations

import torch

_WTYPES: dict[int, object] = {}  # ScalarType objects by id: the op's schema carries only the int


@torch.library.custom_op("quantbench::gptq_marlin_gemm", mutates_args=())
def gptq_marlin_gemm(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                     g_idx: torch.Tensor, perm: torch.Tensor, workspace: torch.Tensor,
                     bias: torch.Tensor | None, wtype_id: int, size_n: int, size_k: int,
                     is_k_full: bool, use_fp32_reduce: bool) -> torch.Tensor:
    # The workspace is a lock buffer the kernel returns to zero before it exits, so declaring no
    # mutation is true of every state a caller can observe, and spares a functionalisation copy.
    from gptqmodel.utils.marlin import apply_gptq_marlin_linear

    return apply_gptq_marlin_linear(
        input=x, weight=qweight, weight_scale=scales, weight_zp=zeros, g_idx=g_idx,
        g_idx_sort_indices=perm, workspace=workspace, wtype=_WTYPES[wtype_id],
        output_size_per_partition=size_n, input_size_per_partition=size_k, is_k_full=is_k_full,
        bias=bias, use_fp32_reduce=use_fp32_reduce, use_atomics=False)


@gptq_marlin_gemm.register_fake
def _(x, qweight, scales, zeros, g_idx, perm, workspace, bias, wtype_id, size_n, size_k,
      is_k_full, use_fp32_reduce):
    return x.new_empty((*x.shape[:-1], size_n))


@torch.library.custom_op("quantbench::awq_marlin_gemm", mutates_args=())
def awq_marlin_gemm(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                    g_idx: torch.Tensor, perm: torch.Tensor, workspace: torch.Tensor,
                    bias: torch.Tensor | None, wtype_id: int, size_n: int, size_k: int) -> torch.Tensor:
    # AWQ's Marlin layers call the same GEMM with AWQ's zero points; GPTQModel picks the reduction
    # (atomic or not) from the row count inside this call, as its own forward does.
    from gptqmodel.utils.marlin import apply_awq_marlin_linear

    return apply_awq_marlin_linear(
        input=x, weight=qweight, weight_scale=scales, weight_zp=zeros, g_idx=g_idx,
        g_idx_sort_indices=perm, workspace=workspace, quant_type=_WTYPES[wtype_id],
        output_size_per_partition=size_n, input_size_per_partition=size_k, bias=bias)


@awq_marlin_gemm.register_fake
def _(x, qweight, scales, zeros, g_idx, perm, workspace, bias, wtype_id, size_n, size_k):
    return x.new_empty((*x.shape[:-1], size_n))


def _traceable_forward(self, x: torch.Tensor) -> torch.Tensor:
    return gptq_marlin_gemm(x, self.qweight, self.scales, self.qzeros, self.g_idx, self.g_idx_sort_indices,
                            self.workspace, self.bias, self.weight_type.id, self.out_features,
                            self.in_features, self.is_k_full, self.fp32)


def _traceable_awq_forward(self, x: torch.Tensor) -> torch.Tensor:
    return awq_marlin_gemm(x, self.qweight, self.scales, self.qzeros, self.g_idx, self.g_idx_sort_indices,
                           self.workspace, self.bias, self.weight_type.id, self.out_features, self.in_features)


def _marlin_classes() -> dict:
    """GPTQModel's Marlin layer classes -> the traceable forward that replaces theirs."""
    classes = {}
    try:
        from gptqmodel.nn_modules.qlinear.marlin import MarlinLinear
        classes[MarlinLinear] = _traceable_forward
        from gptqmodel.nn_modules.qlinear.marlin_awq import AwqMarlinLinear
        classes[AwqMarlinLinear] = _traceable_awq_forward
    except ImportError:
        pass
    return classes


def patch(model, dtype: torch.dtype) -> dict:
    """Route the model's Marlin layers (GPTQ and AWQ) through the custom ops. Returns how many were
    patched and, for any left on GPTQModel's own forward, why."""
    classes = _marlin_classes()
    patched, kept = 0, {}
    for module in model.modules():
        forward = classes.get(type(module))
        if forward is None:
            continue
        reason = None
        if getattr(module, "_marlin_tile_padding", None) is not None:
            reason = "padded tiles"
        elif getattr(module, "adapter", None):
            reason = "adapter"
        elif module.scales.dtype != dtype:
            reason = f"scales in {module.scales.dtype}, activations in {dtype}"
        if reason:
            kept[reason] = kept.get(reason, 0) + 1
            continue
        _WTYPES[module.weight_type.id] = module.weight_type
        module.forward = forward.__get__(module)
        patched += 1
    out = {"marlin_layers_traceable": patched}
    if kept:
        out["marlin_layers_kept"] = kept
    return out
