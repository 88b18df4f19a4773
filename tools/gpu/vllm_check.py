"""On a GPU node: vLLM through quantbench's vllm engine (quantbench/engines/vllm_runner.py) on one small model
folder, before a DAG with `benchmark.engines: [..., vllm]` depends on it.

    python tools/gpu/vllm_check.py MODEL_DIR [--json OUT.json] [--compiled]

Loads MODEL_DIR with vLLM (float16, eager unless --compiled, a third of the GPU's memory) and runs the
engine cells at small sizes (decode at batch 1, 4 and 16 after 30 tokens, 32 new; a 512-token prefill; 16
requests of 128 tokens generating 32), printing each cell and the engine's settings (vLLM's version, the
quantization it picked, the environment it ran under). A sign of life and the import chain checked, not a
benchmark. MODEL_DIR: a small causal LM folder with its tokenizer, e.g. those of
tools/gpu/vllm_check_models.py (a 2-layer random Llama with SmolLM2's tokenizer and its GPTQ and AWQ
4-bit checkpoints, 16 MB each), carried in the parts (tools/gpu/pack-vllm.sh).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from quantbench.engines import cells  # noqa: E402 - the repository's root first
from quantbench.engines.vllm_runner import VllmRunner  # noqa: E402

SPEC = {"prompt_tokens": 30, "new_tokens": 32, "batch_sizes": [1, 4, 16], "prefill_tokens": 512, "warmup": 1,
        "repeats": 3, "throughput": {"requests": 16, "prompt_tokens": 128, "new_tokens": 32}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--json")
    ap.add_argument("--compiled", action="store_true",
                    help="torch.compile and CUDA graphs, vLLM's default (benchmark.vllm.enforce_eager: false)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    longest, widest = cells.extent(cells.filled(SPEC))
    runner = VllmRunner(args.model_dir, "float16", 0, longest, widest, gpu_memory_utilization=0.3,
                        enforce_eager=not args.compiled)
    load_s = time.perf_counter() - t0
    print(f"loaded in {load_s:.1f} s: {runner.info()}", flush=True)
    out = cells.run(runner, SPEC, runner.vocab_size, 0, set(), progress=lambda m: print(m, flush=True))
    result = {"load_s": load_s, "info": runner.info(), "cells": out}
    runner.close()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
