"""Which layers a CUDA graph cannot hold, and why.

torch.cuda.graph records the kernels launched on the stream it captures. A kernel launched on the
legacy default stream instead (a CUDA launch with no stream argument) is not recorded: it runs once,
at capture time, and every replay skips it. Capture does not fail, because PyTorch's capture stream
does not synchronise with the legacy one; the replayed step silently reuses stale GEMM outputs.

GPTQModel 7.6's exllama_v2 kernels are launched that way (`kernel<<<gridDim, blockDim>>>` in
gptqmodel_ext/exllamav2/cuda/q_gemm.cu and q_gemm_awq.cu), while its Marlin kernels take PyTorch's
current stream (gptq_marlin.cu: `at::cuda::getCurrentCUDAStream`). On the H100, exllama_v2's
captured step picked other greedy tokens than eager generate from the first decode step on and ran
at an impossible 70% of the bandwidth roofline: the GEMMs were not in the graph.
"""
from __future__ import annotations

_LEGACY_STREAM = ("its CUDA kernels launch on the legacy default stream (gptqmodel_ext/exllamav2/cuda/"
                  "{src}: no stream argument), so a CUDA graph captured on PyTorch's stream does not "
                  "record them and every replay would skip the GEMMs")

# QuantLinear class name -> why a graph cannot capture it
UNCAPTURABLE = {
    "ExllamaV2Linear": "GPTQModel exllama_v2: " + _LEGACY_STREAM.format(src="q_gemm.cu"),
    "AwqExllamaV2Linear": "GPTQModel AWQ exllama_v2: " + _LEGACY_STREAM.format(src="q_gemm_awq.cu"),
}


def blocker(model) -> str | None:
    """Why the model's decode step cannot be captured into a CUDA graph, or None."""
    for module in model.modules():
        why = UNCAPTURABLE.get(type(module).__name__)
        if why:
            return why
    return None
