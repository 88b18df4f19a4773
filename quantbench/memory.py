"""Peak memory of one measurement: CUDA allocator statistics on the GPU, resident set size on the CPU."""
from __future__ import annotations

import gc

import torch

PAGE_MB = 4096 / 2**20


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_MB


def freeze_long_lived_objects() -> None:
    """Move everything alive now (libraries, the loaded model) out of the collector's sight, so the
    gc.collect() of each reset scans only what measurements create (0.26 s -> ~0 per reset here)."""
    gc.collect()
    gc.freeze()


def reset(device: str) -> None:
    """Free what the last measurement left behind, so one cell's cache does not leak into the next."""
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _reset_cpu_peak() -> bool:
    """Reset the kernel's high-water mark of resident memory (VmHWM); Linux >= 4.0."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _cpu_peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return _rss_mb()


class PeakMemory:
    """Context manager: peak memory of the enclosed region, in MB.

    CUDA: max allocated and max reserved since entry. CPU: the process's peak resident set size,
    from the kernel's high-water mark reset on entry (no sampling thread: one would steal the GIL
    from the code being timed). Where the mark cannot be reset, the process-lifetime peak is
    reported and flagged.
    """

    def __init__(self, device: str):
        self.device = device
        self.result: dict = {}

    def __enter__(self):
        reset(self.device)
        if self.device != "cuda":
            self._reset_ok = _reset_cpu_peak()
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.result = {"peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20,
                           "peak_reserved_mb": torch.cuda.max_memory_reserved() / 2**20}
        else:
            self.result = {"peak_memory_mb": _cpu_peak_mb()}
            if not self._reset_ok:
                self.result["peak_memory_note"] = "process-lifetime peak (VmHWM could not be reset)"
        return False


def unmeasured_on_cuda(runtime: str, info: dict) -> str | None:
    """Why PeakMemory's CUDA figures (torch's allocator) do not hold a model's memory, or None: llama.cpp
    allocates its own buffers, on the GPU (outside torch's allocator, and in a worker process where it is
    one) or in host memory (offload: cpu, which a CUDA job does not sample)."""
    if runtime != "llama.cpp":
        return None
    where = "GPU" if info.get("n_gpu_layers") else "host"
    process = " in its worker process" if info.get("process") == "worker" else ""
    return f"llama.cpp holds its model's {where} memory{process}, outside torch's CUDA allocator: not measured"


def mark_unmeasured(fields: dict, why: str) -> dict:
    """`fields` with its peak-memory figures set to None and the reason beside them."""
    out = {k: (None if k in ("peak_memory_mb", "peak_reserved_mb", "load_peak_memory_mb") else v)
           for k, v in fields.items()}
    out["peak_memory_note"] = why
    return out


def storage_tensors(t: torch.Tensor):
    """The plain tensors that hold a tensor's bytes. A quantized tensor subclass (torchao's
    Int8Tensor, Int4TilePackedTo4dTensor) reports its logical dtype and no storage of its own
    (data_ptr 0); its bytes are in the inner tensors it flattens into."""
    flatten = getattr(t, "__tensor_flatten__", None)
    if flatten is None:
        yield t
        return
    names, _ = flatten()
    for name in names:
        yield from storage_tensors(getattr(t, name))


def quantization_state(t: torch.Tensor):
    """The constants bitsandbytes keeps on a quantized weight, outside parameters and buffers, and
    saves beside it: a 4-bit weight's QuantState (one absmax per block of 64 and the 16-entry code
    table; with double quantization the absmax is 8-bit and adds its own float32 absmax per 256
    blocks, a 256-entry code table and an offset: QLoRA, arXiv 2305.14314, section 3), an int8
    weight's per-row scales (SCB). Entries a scheme lacks are None."""
    qs = getattr(t, "quant_state", None)  # bitsandbytes Params4bit
    if qs is not None:
        yield from (qs.absmax, qs.code, qs.offset)
        if qs.state2 is not None:
            yield from (qs.state2.absmax, qs.state2.code)
    yield getattr(t, "SCB", None)  # bitsandbytes Int8Params


def weight_tensors(model):
    """Every tensor that holds part of the model's weights, quantization constants included (an
    absent constant is yielded as None, which storage_mb counts as nothing)."""
    for t in model.parameters():
        yield t
        yield from quantization_state(t)
    yield from model.buffers()
    for module in model.modules():
        # bitsandbytes' int8 layer moves its row scales from the weight to its own state on the
        # first forward pass (weight.SCB becomes None)
        yield getattr(getattr(module, "state", None), "SCB", None)
        # HQQ's layers keep each group's scale and zero point in a plain dict, outside
        # parameters and buffers.
        meta = getattr(module, "meta", None)
        if isinstance(meta, dict):
            yield from (v for v in meta.values() if isinstance(v, torch.Tensor))


def model_weights_mb(model) -> float:
    """Bytes of the model's weights as the scheme stores them: parameters, buffers, and the
    quantization constants beside them (scales, zero points, bitsandbytes' absmax and code tables),
    so that double quantization's saving shows."""
    return storage_mb(weight_tensors(model))


def embedding_head_modules(model) -> list:
    """The input embedding table's module and the output head's (one module when they are tied, or
    when the head is the embedding itself); empty for a model that offers neither."""
    found = []
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        module = getattr(model, getter)() if hasattr(model, getter) else None
        if module is not None and all(module is not m for m in found):
            found.append(module)
    return found


def weights_split_mb(model) -> dict:
    """model_weights_mb in two parts: the embedding and output head (the input embedding table plus
    the head that turns hidden states into logits, counted once when tied, with whatever
    quantization constants they carry) and the body (everything else: the decoder layers, their
    norms and the final norm). A small model's embedding is a large share of its weights and
    backends treat it differently (kept in float by the torch schemes, quantized in a GGUF file),
    so the body is what compares schemes like for like. The parts sum to model_weights_mb exactly:
    each storage is counted once, in the embedding/head part if those modules hold it, else in the body."""
    head_ptrs = {t.data_ptr() for m in embedding_head_modules(model) for outer in weight_tensors(m)
                 if isinstance(outer, torch.Tensor) for t in storage_tensors(outer) if t.numel()}
    seen, parts = set(), {"body_mb": 0, "embedding_head_mb": 0}
    for outer in weight_tensors(model):
        if not isinstance(outer, torch.Tensor):
            continue
        for t in storage_tensors(outer):
            if t.numel() and t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                parts["embedding_head_mb" if t.data_ptr() in head_ptrs else "body_mb"] += t.numel() * t.element_size()
    return {k: v / 2**20 for k, v in parts.items()}


def storage_mb(tensors, skip: set[int] = frozenset()) -> float:
    """MB the given tensors hold, each storage counted once (a quantized tensor subclass by the
    inner tensors it flattens into); storages whose data pointer is in `skip` are left out. Entries
    that are not tensors (an absent quantization constant) count nothing."""
    seen, total = set(skip), 0
    for outer in tensors:
        if not isinstance(outer, torch.Tensor):
            continue
        for t in storage_tensors(outer):
            if t.numel() and t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
    return total / 2**20
