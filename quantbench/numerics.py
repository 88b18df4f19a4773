"""What a job's numbers depend on besides seed, code and libraries, and the settings that pin it.

Measured on the toy (docs/troubleshooting.md, "Same seed, same numbers"): on one CPU every stage is
bit-identical from run to run, under any load. Two things change the bits:

- the CPU's instruction set, through the kernels it selects: PyTorch's own (softmax, SiLU,
  attention, AdamW, the normal_ that initialises weights) by ATen's CPU capability (AVX2 or
  AVX512), MKL's GEMM and LAPACK by MKL's code branch. On one CPU, forcing other kernels
  (ATEN_CPU_CAPABILITY=default, MKL_CBWR=COMPATIBLE) changes the trained toy's weights; the
  committed toy, trained with the same code, libraries, seed and one thread on a CPU with AVX512
  (AVX512-BF16 included), has the same losses as a run on an
  AVX2-only CPU up to step 15, then drifts apart (final loss
  0.5424 against 0.5439), and every quality figure with it.
- the intra-op thread count, in a few kernels: MKL's Cholesky (which GPTQ runs on each layer's
  Hessian) and PyTorch's whole-tensor sums add in an order that depends on it. The workflow gives
  every job whose outputs are numbers a thread count from the config, never from the machine.
"""
from __future__ import annotations

import os

# Set in the environment of every job whose outputs are numbers, before PyTorch loads (the libraries
# read them once, at start-up). Benchmarks run without them: their timings are of the machine's own
# kernels.
PINNED_KERNELS = {
    # PyTorch's vectorized kernels as an AVX2 CPU runs them, on CPUs with AVX512 too (where AVX2 is
    # the best a CPU has, this changes nothing).
    "ATEN_CPU_CAPABILITY": "avx2",
    # MKL's AVX2 branch of conditional numerical reproducibility: the same results on every Intel CPU
    # with AVX2. MKL documents that other vendors' CPUs ignore it and keep their automatic branch;
    # MKL_CBWR=COMPATIBLE is the one branch it makes vendor-independent, at about 3x the toy's
    # training time here, so it is left to the user (a value set in the environment is kept).
    "MKL_CBWR": "AVX2",
    # oneDNN is left to pick its own kernels: capped at AVX2 (ONEDNN_MAX_CPU_ISA=AVX2) on a CPU with
    # VNNI, its int8 product (torch._int_mm, which torchao's int8 dynamic scheme runs on the CPU) takes
    # the AVX2 path that sums u8 x s8 pairs in saturating 16-bit lanes, so the products are no longer
    # exact: on the tiny test Llama, KL 1.3e-4 against fp32 capped, below per-tensor rounding's 2.1e-6
    # uncapped (tests/test_quantized_logits.py). Exact integer products are the same on every ISA that
    # computes them exactly, so the cap bought nothing there. bnb's int8 logits are identical either way.
}

# The /proc/cpuinfo flags that select different kernels in the libraries quantbench runs; two CPUs
# of one model name ("AMD EPYC" under a hypervisor) can differ in them.
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def pin_kernels(environ=os.environ) -> list[str]:
    """Set PINNED_KERNELS in environ where unset; return the names it set."""
    added = [k for k in PINNED_KERNELS if k not in environ]
    for k in added:
        environ[k] = PINNED_KERNELS[k]
    return added


def cpu_flags() -> str:
    """The CPU's kernel-selecting flags, space-separated ('' where /proc/cpuinfo is unreadable)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return " ".join(f for f in KERNEL_FLAGS if f in have)
    except OSError:
        pass
    return ""


def kernel_settings() -> dict:
    """The kernels this process runs: ATen's CPU capability and the pinning variables as set."""
    import torch

    return {"aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            **{k: os.environ.get(k) for k in PINNED_KERNELS}}
