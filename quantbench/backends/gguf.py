"""GGUF through llama.cpp: the model converted by llama.cpp's own converter (convert_hf_to_gguf.py,
losslessly: in the base's own float type), quantized by llama.cpp (llama_model_quantize) and run by
llama.cpp on the CPU, or with `offload: gpu` on a CUDA GPU (every layer offloaded: a CUDA build of
llama.cpp, tools/gpu/build-llamacpp-cuda.sh, run in a worker process without torch, beside which the build
made on a GPU node crashed; checked on a GPU, not yet in a whole run). Converting and quantizing run on the
CPU either way. The folder holds model.gguf beside the tokenizer and config.json (the stages
tokenize with them; the ids are the GGUF vocabulary's)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from quantbench.backends.base import Backend, register
from quantbench.gguf_types import TENSOR_TYPES, TYPES
from quantbench.loaded_model import LoadedModel

SPEC = {"type": list(TYPES), "n_ctx": int, "embedding_type": list(TENSOR_TYPES), "offload": ["cpu", "gpu"]}
# The context llama.cpp allocates its KV cache for, and where its layers run: chosen at load time,
# not stored in the file (methods that differ only there share one quantize job).
LOAD_ONLY = {"n_ctx", "offload"}
DEFAULTS = {"n_ctx": 2048, "offload": "cpu"}
# the base's dtype -> the converter's lossless output type
CONVERT_TYPE = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}
# one line per tensor: "blk.0.attn_k.weight - ncols 64 not divisible by 256 (required for type q4_K)
# -> falling back to q5_0" (llama.cpp's llama_model_quantize_impl)
FALLBACK_RE = re.compile(r"falling back to", re.IGNORECASE)


def _on_gpu(params: dict) -> bool:
    """offload: gpu (a folder written before the parameter existed loads as offload: cpu)."""
    return params.get("offload", "cpu") == "gpu"


@register("gguf")
class GGUF(Backend):
    SPEC = SPEC
    DEFAULTS = DEFAULTS
    LOAD_ONLY = frozenset(LOAD_ONLY)
    REQUIRED = ("type",)
    DESCRIPTIONS = {
        "type": "llama.cpp quantization type (K-quant _M/_S mixes keep some tensors at a higher type)",
        "n_ctx": "context llama.cpp allocates its KV cache for, in tokens",
        "embedding_type": "ggml type of the token embedding and output head (default: llama.cpp's choice "
                          "for the file type, e.g. Q6_K or Q8_0); F32 keeps them as the PyTorch schemes do",
        "offload": "where llama.cpp runs the model: cpu (the host's cores) or gpu (every layer on the CUDA GPU; "
                   "needs device cuda and a CUDA build of llama.cpp, tools/gpu/build-llamacpp-cuda.sh; "
                   "it runs in a worker process without torch)",
    }
    # llama.cpp's CPU backend by default; a method with offload: gpu leaves the lane (host_cpu_lane)
    HOST_CPU_LANE = True
    CPU_ALTERNATIVE = "offload: cpu (the default: llama.cpp on the host's cores)"
    RUNTIME = "llama.cpp"
    LABEL = "GGUF"
    ENGINES = {"llamacpp": "its GGUF file, on the CPU or (offload: gpu) the GPU"}
    COLOR = "#2ca02c"
    MARKER = "D"
    EVALUATE_ENV = "gguf"  # llama.cpp scores the file: its env carries lm-eval too
    REQUANTIZE_TARGET = True
    QUANTIZE_MINUTES = (15, 10)

    def describe(self, params: dict) -> str:
        emb = f", embedding {params['embedding_type']}" if params.get("embedding_type") else ""
        where = ", every layer on the GPU" if _on_gpu(params) else ""
        return f"GGUF {params['type']}{emb} (llama.cpp{where})"

    def needs_cuda(self, params: dict) -> str | None:
        if _on_gpu(params):
            return "offload: 'gpu' runs llama.cpp's layers on a CUDA GPU"
        return None  # llama.cpp's CPU backend

    def unavailable(self, params: dict) -> str | None:
        from quantbench import llamacpp

        return llamacpp.available()

    def gpu_unavailable(self, params: dict) -> str | None:
        if not _on_gpu(params):
            return None
        from quantbench import llamacpp

        return llamacpp.gpu_offload_missing()

    def host_cpu_lane(self, params: dict) -> bool:
        return not _on_gpu(params)

    def source_problem(self, source: str) -> str | None:
        # llama.cpp's converter writes a tokenizer it recognises (by a hash of its pre-tokenizer); the
        # toy and random models train their own byte-level BPE, which it stops on.
        if source not in ("toy", "random"):
            return None
        return (f"backend 'gguf' converts the model with llama.cpp's converter, which does not know the {source} "
                "model's locally trained tokenizer; allowed with model.source: pretrained or gguf (a real model's "
                "tokenizer), e.g. config/smollm2.yaml")

    def untrainable(self, params: dict) -> str | None:
        return "a GGUF file run by llama.cpp is not a PyTorch module; PEFT cannot train LoRA on it"

    def problems(self, params: dict, model_dims: list[int] | None) -> list[str]:
        if params["n_ctx"] < 16:
            return [f"n_ctx: {params['n_ctx']} is too small; allowed: at least 16 (the longest sequence a job feeds)"]
        return []

    def bits_per_weight(self, params: dict) -> float:
        return TYPES[params["type"]][1]

    def nominal_bits(self, params: dict) -> float | None:
        return self.bits_per_weight(params) if params.get("type") in TYPES else None  # the type's main block width

    def quantize(self, src: str, dst: Path, params: dict, ctx) -> dict:
        import torch

        from quantbench import llamacpp
        from quantbench.modelio import load_tokenizer

        why = llamacpp.available()
        if why:
            raise RuntimeError(why)
        outtype = CONVERT_TYPE[ctx.dtype_name]
        converted = Path(dst) / f"model-{outtype}.gguf"
        llamacpp.convert(src, converted, outtype)
        ftype, _ = TYPES[params["type"]]
        embedding_type = TENSOR_TYPES.get(params.get("embedding_type"))
        if params["type"].lower() == outtype and embedding_type is None:
            converted.rename(Path(dst) / llamacpp.GGUF_FILE)
            log: list[str] = []
        else:
            log = llamacpp.quantize_file(converted, Path(dst) / llamacpp.GGUF_FILE, ftype, torch.get_num_threads(),
                                         embedding_type=embedding_type)
            converted.unlink()  # the intermediate is the base's size: not kept
        for name in ("config.json", "generation_config.json"):
            if (Path(src) / name).is_file():
                shutil.copy2(Path(src) / name, Path(dst) / name)
        load_tokenizer(src).save_pretrained(dst)
        summary = llamacpp.tensor_summary(Path(dst) / llamacpp.GGUF_FILE)
        fallbacks = [line.strip() for line in log if FALLBACK_RE.search(line)]
        return {"converted_as": outtype, "tensor_types": summary["tensor_types"],
                "measured_bits_per_weight": summary["measured_bits_per_weight"],
                "fallback_tensors": len(fallbacks), "fallback_examples": fallbacks[:3]}

    def load(self, path: str, params: dict, ctx):
        import torch

        from quantbench.llamacpp import LlamaCppModel, gpu_layers

        if _on_gpu(params) and ctx.device != "cuda":
            raise RuntimeError(f"{self.needs_cuda(params)}, and this job runs on {ctx.device!r}; choose "
                               f"{self.CPU_ALTERNATIVE}")
        n_ctx = params.get("n_ctx", DEFAULTS["n_ctx"])
        model = LlamaCppModel(path, n_threads=torch.get_num_threads(), n_ctx=n_ctx, n_gpu_layers=gpu_layers(params))
        return LoadedModel.of(model, model.info(), runtime=self.RUNTIME, batch_limit=model.max_batch_size,
                              batch_reason=model.batch_reason, file_weights=model.file_weights())
