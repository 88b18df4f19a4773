"""vLLM as an engine (quantbench.engines.cells), through its offline Python API (`vllm.LLM`): the variant's
folder as vLLM loads it, with the quantization method vLLM picks from the checkpoint's own
quantization_config (recorded), prefix caching off (the cells send fresh prompts anyway, and a cached
prefix would time a cache hit), greedy sampling with end-of-sequence ignored so that every row generates
the tokens its cell names. Needs a CUDA GPU and the vllm package (not part of the CPU setup)."""
from __future__ import annotations

import importlib.util
import os

INSTALL_HINT = "benchmark.engines: vllm needs the vllm package on the GPU node (docs/running.md, \"Engines\")"


def missing() -> str | None:
    """Why vLLM cannot run here, or None."""
    try:
        import vllm  # noqa: F401
    except ImportError as err:
        return f"vLLM is not installed ({err}); {INSTALL_HINT}"
    return None


class VllmRunner:
    name = "vllm"

    def __init__(self, folder: str, dtype: str, seed: int, max_model_len: int, max_num_seqs: int,
                 gpu_memory_utilization: float = 0.85, enforce_eager: bool = False):
        why = missing()
        if why:
            raise RuntimeError(why)
        # vLLM's sampler imports flashinfer unguarded where this is on (its default); an offline node without
        # flashinfer (tools/gpu/vllm-wheels.txt) samples with vLLM's own. No usage reports from a node.
        if importlib.util.find_spec("flashinfer") is None:
            os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
        import vllm

        self.version = vllm.__version__
        self.settings = {"dtype": dtype, "seed": seed, "max_model_len": max_model_len, "max_num_seqs": max_num_seqs,
                         "gpu_memory_utilization": gpu_memory_utilization, "enforce_eager": enforce_eager,
                         "enable_prefix_caching": False}
        self.llm = vllm.LLM(model=folder, tokenizer=folder, **self.settings)
        self.vocab_size = self.llm.llm_engine.model_config.get_vocab_size()
        self.max_batch = max_num_seqs

    def generate(self, rows: list[list[int]], new_tokens: int) -> list[int]:
        from vllm import SamplingParams

        sampling = SamplingParams(temperature=0.0, max_tokens=new_tokens, min_tokens=new_tokens, ignore_eos=True,
                                  detokenize=False)
        outs = self.llm.generate([{"prompt_token_ids": r} for r in rows], sampling, use_tqdm=False)
        return [len(o.outputs[0].token_ids) for o in outs]

    def info(self) -> dict:
        config = self.llm.llm_engine.model_config
        return {"engine": self.name, "vllm": self.version, "quantization": getattr(config, "quantization", None),
                **self.settings, "environment": {k: os.environ.get(k) for k in ("VLLM_USE_FLASHINFER_SAMPLER",
                                                                                 "VLLM_NO_USAGE_STATS")}}

    def close(self) -> None:
        del self.llm
