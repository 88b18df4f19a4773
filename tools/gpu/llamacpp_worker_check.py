"""On a GPU node: llama.cpp's CUDA build beside PyTorch's CUDA build, the way a GGUF job with `offload: gpu`
runs it (quantbench/llamacpp_worker.py), before a whole DAG depends on it.

    python tools/gpu/llamacpp_worker_check.py GGUF_FILE [--json OUT.json]

First this process makes torch's CUDA context, as every job's does. Then:
  1. two workers on the file, every layer on the GPU and none: the same calls on both (the logits of 64
     random tokens, a greedy generation of 32, a batched prefill and generation of 3 rows, the NLL per
     token of a fixed English paragraph); how far the GPU's logits and NLLs are from the CPU's, whether
     their tokens agree, each worker's round trip and system_info;
  2. the same load in a process that has imported torch (what the jobs did before the worker), in a child
     process, to see whether it still dies and how.
Prints one JSON object (and writes it to --json). Needs only torch, numpy and llama-cpp-python (no model
folder: the file alone). The wall times are single runs, a sign of life, not a benchmark.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from quantbench.llamacpp_worker import WorkerEngine  # noqa: E402 - the repository's root first

IN_PROCESS = """
import sys, torch
torch.ones(1, device="cuda")
from quantbench.llamacpp_engine import LlamaCppEngine
engine = LlamaCppEngine(sys.argv[1], 4, 256, -1)
print("loaded", engine.n_vocab, flush=True)
"""


# Real text beside the random ids: random sequences are far from what a model sees, and a difference
# between the GPU's and the CPU's logits on them says little about one on text.
TEXT = ("The river rises in the hills north of the town and runs south through farmland for about forty "
        "miles before it reaches the sea. In the spring the water is high and fast, and the old mill by the "
        "bridge still turns its wheel. Most of the year, though, the river is slow and shallow enough that "
        "children wade across it in summer, and fishermen stand in the reeds along its banks at dawn.")


def text_nll(engine) -> dict:
    """Mean negative log-likelihood per token of TEXT (nats) and each position's top token."""
    ids = engine.tokenize(TEXT)
    logits = engine.logits(ids, len(ids)).astype(np.float64)[:-1]
    logits -= logits.max(1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    nll = -logp[np.arange(len(ids) - 1), ids[1:]]
    return {"nll_mean": float(nll.mean()), "nll": nll, "top1": logits.argmax(1), "tokens": len(ids)}


def calls(engine, n_vocab: int) -> dict:
    rng = np.random.default_rng(0)
    ids = [int(t) for t in rng.integers(100, min(n_vocab, 20000), 64)]
    rows = [ids[:24], ids[8:40], ids[16:30]]
    t0 = time.perf_counter()
    greedy = engine.greedy(ids[:16], 32)
    greedy_s = time.perf_counter() - t0
    return {"logits": engine.logits(ids, 64), "greedy": greedy, "greedy_32_s": greedy_s,
            "prefill_batch": engine.prefill_batch(rows), "greedy_batch": engine.greedy_batch(rows, 8),
            "text": text_nll(engine), "info": engine.info()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf_file")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.ones(1, device="cuda")  # torch's CUDA context first, as in every job
    out: dict = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0)}
    results = {}
    for name, layers in (("gpu", -1), ("cpu", 0)):
        t0 = time.perf_counter()
        engine = WorkerEngine(args.gguf_file, 4, 256, layers)
        load_s = time.perf_counter() - t0
        try:
            results[name] = {**calls(engine, engine.n_vocab), "load_s": load_s,
                             "torch_in_worker": engine.torch_imported()}
        finally:
            engine.close()
    gpu, cpu = results["gpu"], results["cpu"]
    scale = float(np.abs(cpu["logits"]).max())
    out["workers"] = {name: {"load_s": round(r["load_s"], 3), "greedy_32_s": round(r["greedy_32_s"], 4),
                             "torch_in_worker": r["torch_in_worker"], **r["info"]} for name, r in results.items()}
    out["gpu_vs_cpu"] = {
        "logits_max_abs_diff": float(np.abs(gpu["logits"] - cpu["logits"]).max()), "logits_max_abs": scale,
        "top1_agree_of_64": int((gpu["logits"].argmax(1) == cpu["logits"].argmax(1)).sum()),
        "greedy_same": gpu["greedy"] == cpu["greedy"],
        "prefill_batch_max_abs_diff": float(np.abs(gpu["prefill_batch"] - cpu["prefill_batch"]).max()),
        "greedy_batch_same": gpu["greedy_batch"] == cpu["greedy_batch"],
        "text_tokens": gpu["text"]["tokens"],
        "text_nll_per_token_nats": {"gpu": gpu["text"]["nll_mean"], "cpu": cpu["text"]["nll_mean"]},
        "text_nll_max_abs_diff": float(np.abs(gpu["text"]["nll"] - cpu["text"]["nll"]).max()),
        "text_top1_agree": int((gpu["text"]["top1"] == cpu["text"]["top1"]).sum())}
    proc = subprocess.run([sys.executable, "-c", IN_PROCESS, args.gguf_file], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[2])
    tail = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()][-3:]
    out["in_process_with_torch"] = {"returncode": proc.returncode, "tail": tail}
    text = json.dumps(out, indent=1, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
