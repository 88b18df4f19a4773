"""AWQ (activation-aware weight quantization) through GPTQModel's AWQ path: calibration activations
choose per-channel scales that protect the weights of large inputs, then each group of weights is
rounded. AutoAWQ, where AWQ started, is archived; GPTQModel maintains it. Checkpoints are written in
the GEMM format, which every kernel below reads, so the kernel is a load-time choice (one checkpoint
serves them all) and the one that ran is recorded."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from quantbench import gptqmodel_run
from quantbench.backends.base import Backend, register
from quantbench.backends.groups import bits_with_group_scales, group_size_problem
from quantbench.loaded_model import LoadedModel

# kernel name in the config -> (GPTQModel backend, bits, group sizes, where it runs). Bits and group
# sizes are the kernels' own SUPPORTS_BITS and SUPPORTS_GROUP_SIZE in gptqmodel 7.6, within SPEC's
# bits (tests/test_quantized_logits.py checks they agree).
KERNELS = {
    "torch": ("awq_torch", [2, 3, 4], [-1, 16, 32, 64, 128], "any"),     # dequantize, then matmul in 16 bits
    "torch_fused": ("awq_torch_fused", [4], [-1, 16, 32, 64, 128], "cpu"),  # ATen int4 matmul, float32 too
    "gemm": ("awq_gemm", [4], [-1, 16, 32, 64, 128], "cuda"),
    "marlin": ("awq_marlin", [4], [-1, 32, 64, 128], "cuda"),
    "exllama_v2": ("awq_exllama_v2", [4], [-1, 32, 64, 128], "cuda"),
}
# 8 bits is left out although the torch and Marlin kernels read it: GPTQModel 7.6 packs the codes
# from weight + zero point * scale computed in the model's dtype, bfloat16 on a float32 run (_dtype),
# whose 8 significant bits cannot hold up to 255 steps exactly: 19% of 8-bit codes moved by up to 2
# steps, and the toy's 8-bit model came out further from float32 than its 4-bit one.
SPEC = {"bits": [2, 3, 4], "group_size": int, "zero_point": [True, False], "kernel": list(KERNELS)}
# Chosen when the checkpoint is loaded, not stored in it: methods differing only here share one.
LOAD_ONLY = {"kernel"}
# zero_point: AWQ's usual asymmetric grid (AutoAWQ's default); GPTQModel's AWQConfig defaults to symmetric.
DEFAULTS = {"group_size": 128, "zero_point": True, "kernel": "torch"}
CPU_ALTERNATIVE = "kernel torch or torch_fused"
CUDA_ALTERNATIVE = "kernel torch, gemm, marlin or exllama_v2"
CALIBRATED = True  # quantize() needs ctx.calibration_texts
# kernel -> GPTQModel JIT extension it builds on first use (the benchmark builds it before timing)
JIT = {"gemm": "awq", "marlin": "marlin", "exllama_v2": "exllamav2_awq"}


def _dtype(ctx, kernel: str = "torch"):
    """GPTQModel quantizes AWQ and runs most of its kernels in 16 bits only (float32 raises "only
    supports [torch.float16, torch.bfloat16]"). A float32 run uses bfloat16, the dtype PITFALLS
    names for the CPU: it has float32's range, and values in and out of SmolLM2's down_proj reached
    2.2e4 on one prompt, a third of float16's largest. torch_fused computes in float32 itself."""
    import torch

    if ctx.dtype in (torch.float16, torch.bfloat16) or kernel == "torch_fused":
        return ctx.dtype
    return torch.bfloat16


def quantize_config(params: dict, device: str = "cpu", in_memory: bool = False):
    from gptqmodel import AWQConfig

    # On CUDA: pack on the GPU and keep finished layers in memory (see gptq.quantize_config). Layers
    # offloaded to disk are not usable in this process any more (the model then computes NaN).
    fast = {"pack_impl": "gpu"} if device == "cuda" else {}
    if device == "cuda" or in_memory:
        fast["offload_to_disk"] = False
    return AWQConfig(bits=params["bits"], group_size=params["group_size"], sym=not params["zero_point"], **fast)


def packed_rows(rows: list[dict], seq_len: int) -> list[dict]:
    """The tokens of `rows`, in order, cut into rows of exactly seq_len (the remainder, under seq_len
    tokens, dropped): llm-awq's calibration set (awq/utils/calib_data.py: texts concatenated, cut into
    blocks of 512 tokens). GPTQModel's own calibration_concat_size leaves the last row short, and rows
    of different lengths are what AWQ cannot stack (search_coverage)."""
    ids = [i for row in rows for i in row["input_ids"]]
    return [{"input_ids": ids[k:k + seq_len], "attention_mask": [1] * seq_len}
            for k in range(0, len(ids) - seq_len + 1, seq_len)]


@contextmanager
def search_coverage(into: list[dict]):
    """Collects, for every AWQ scale search, the calibration tokens GPTQModel captured (raw_tokens) and
    those the search was fitted to (retained_tokens). GPTQModel 7.6 stacks the captured activations
    only where every row has one length; otherwise it keeps the last row alone (mode "latest_batch",
    awq_processor.py): with texts of 114-256 tokens, sorted longest first, each search of SmolLM2 was
    fitted to one 114-token text of 64. Observed, not changed: the stats are GPTQModel's own."""
    from gptqmodel.looper.awq_processor import AWQProcessor

    original = AWQProcessor._layer_input_features

    def observed(self, state):
        features = original(self, state)
        into.extend(dict(stat) for stat in self._feature_stats.values())
        return features

    AWQProcessor._layer_input_features = observed
    try:
        yield
    finally:
        AWQProcessor._layer_input_features = original


def quantized(src: str, params: dict, ctx, in_memory: bool = False, coverage: list[dict] | None = None):
    """GPTQModel's model quantized with AWQ, not yet saved; with `in_memory`, usable in this process.
    `coverage` receives search_coverage's stats, one per scale search."""
    gptqmodel_run.environment()
    from gptqmodel import BACKEND

    from quantbench.modelio import load_tokenizer

    tokenizer = load_tokenizer(src)
    # Rows of one length, so that every search sees every calibration token (search_coverage): the
    # texts as the other calibrated methods get them (each cut at calibration_seq_len), packed.
    rows = packed_rows(
        gptqmodel_run.calibration_rows(tokenizer, ctx.calibration_texts, ctx.calibration_seq_len),
        ctx.calibration_seq_len)
    if not rows:
        raise ValueError(f"AWQ: the calibration texts hold fewer than calibration_seq_len "
                         f"({ctx.calibration_seq_len}) tokens in all")
    # GPTQModel packs AWQ layers for its CUDA GEMM kernel unless told otherwise, and that kernel
    # refuses to start without CUDA ("AWQ: CUDA is not available"); the checkpoint format is the same.
    packer = BACKEND.AUTO if ctx.device == "cuda" else BACKEND.AWQ_TORCH
    with search_coverage(coverage if coverage is not None else []):
        model = gptqmodel_run.quantized(src, quantize_config(params, ctx.device, in_memory), rows, ctx.device,
                                        ctx.calibration_seq_len, ctx.calibration_batch_size, dtype=_dtype(ctx),
                                        backend=packer)
    return model, tokenizer, len(rows)


@register("awq")
class AWQ(Backend):
    SPEC = SPEC
    DEFAULTS = DEFAULTS
    LOAD_ONLY = frozenset(LOAD_ONLY)
    CALIBRATED = CALIBRATED
    CPU_ALTERNATIVE = CPU_ALTERNATIVE
    CUDA_ALTERNATIVE = CUDA_ALTERNATIVE
    REQUIRED = ("bits",)
    DESCRIPTIONS = {
        "bits": "bits per weight of the quantized linear layers",
        "group_size": "weights sharing one scale and zero point; divides every layer's input width (-1: one per row)",
        "zero_point": "asymmetric grid with a zero point (AWQ's usual); false: symmetric",
        "kernel": "GPTQModel's AWQ kernel (torch and torch_fused run on the CPU)",
    }
    LABEL = "AWQ"
    ENGINES = {"vllm": "its AWQ checkpoint, through vLLM's awq_marlin (or awq) kernel"}
    COLOR = "#9467bd"
    MARKER = "v"
    ENV = "gptq"  # GPTQModel quantizes and loads AWQ too
    SENSITIVITY = True
    GPTQMODEL_LAYERS = True
    QUANTIZE_MINUTES = (20, 30)

    def describe(self, params: dict) -> str:
        g = params["group_size"]
        return (f"AWQ {params['bits']}-bit, " + (f"group {g}" if g > 0 else "per row")
                + f", zero_point={params['zero_point']}, kernel {params['kernel']}")

    def needs_cuda(self, params: dict) -> str | None:
        if KERNELS[params["kernel"]][3] == "cuda":
            return f"AWQ kernel {params['kernel']!r} runs on CUDA only"
        return None

    def needs_cpu(self, params: dict) -> str | None:
        if KERNELS[params["kernel"]][3] == "cpu":
            return f"AWQ kernel {params['kernel']!r} runs on the CPU only (ATen's int4 CPU matmul)"
        return None

    def problems(self, params: dict, model_dims: list[int] | None) -> list[str]:
        kernel = params["kernel"]
        _, bits, groups, _ = KERNELS[kernel]
        out = []
        if params["bits"] not in bits:
            out.append(f"bits: {params['bits']} is not supported by AWQ kernel {kernel!r}; "
                       f"allowed: {', '.join(map(str, bits))} (or another kernel)")
        why = group_size_problem(params["group_size"], model_dims, per_row=-1 in groups,
                                 choices=[g for g in groups if g > 0])
        if why:
            out.append(f"group_size: {why} (AWQ kernel {kernel!r})")
        return out

    def jit_extension(self, params: dict, dtype_name: str) -> str | None:
        ext = JIT.get(params["kernel"])
        if ext == "marlin":  # one build per activation dtype; a float32 run computes in bfloat16 (_dtype)
            return "marlin_fp16" if dtype_name == "float16" else "marlin_bf16"
        return ext

    def bits_per_weight(self, params: dict) -> float:
        return bits_with_group_scales(params["bits"], params["group_size"])

    def quantize(self, src: str, dst: Path, params: dict, ctx) -> dict:
        coverage: list[dict] = []
        model, tokenizer, samples = quantized(src, params, ctx, coverage=coverage)
        model.save(str(dst))
        tokenizer.save_pretrained(dst)
        return {"calibration_samples": samples, "quantize_dtype": str(_dtype(ctx)).removeprefix("torch."),
                # the fewest calibration tokens any scale search was fitted to, against those captured
                "awq_search_tokens_min": min((c["retained_tokens"] for c in coverage), default=None),
                "awq_captured_tokens_max": max((c["raw_tokens"] for c in coverage), default=None)}

    def load(self, path: str, params: dict, ctx):
        gptqmodel_run.environment()
        from gptqmodel import GPTQModel

        from quantbench.backends.gptq import kernel_names

        kernel = params["kernel"]
        backend = KERNELS[kernel][0]
        dtype = _dtype(ctx, kernel)
        model = GPTQModel.load(path, device=ctx.device, backend=backend, dtype=dtype).model
        return LoadedModel.of(model, {"kernel": "+".join(kernel_names(model)), "awq_backend": backend,
                                      "compute_dtype": str(dtype).removeprefix("torch.")})

    def dequantize(self, path: str, ctx):
        """The AWQ model with every quantized layer replaced by a plain Linear holding the weights the
        torch kernel computes with: the base the adapter trained on, for merging (merge into 'dequant')."""
        import torch
        from gptqmodel.nn_modules.qlinear import AWQuantLinear
        from gptqmodel.quantization.awq.utils.packing_utils import dequantize_gemm

        from quantbench.modelio import read_meta

        # The torch kernel keeps the GEMM-format buffers as stored; the others repack them at load.
        model = self.load(path, {**read_meta(path)["params"], "kernel": "torch"}, ctx).model
        for name, module in list(model.named_modules()):
            if isinstance(module, AWQuantLinear):
                linear = torch.nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                                         device=ctx.device, dtype=ctx.dtype)
                with torch.no_grad():
                    weight = dequantize_gemm(module.qweight, module.qzeros, module.scales, module.bits,
                                         module.group_size)
                    linear.weight.copy_(weight.t())  # the kernel computes x @ weight: (in, out)
                    if module.bias is not None:
                        linear.bias.copy_(module.bias)
                parent, _, child = name.rpartition(".")
                setattr(model.get_submodule(parent), child, linear)
        return model.to(ctx.dtype)
