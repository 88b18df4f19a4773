"""CUDA compute capability: whether a GPU can run a method whose kernels need a minimum one (FP8 matmuls
through torch._scaled_mm need 8.9: Ada, Hopper and later).

Validation asks `problem` with the capability the planning host sees (`visible`, from nvidia-smi, so
the workflow's process never initialises CUDA); a host that plans for GPUs elsewhere (a cluster's
submit host, QUANTBENCH_ASSUME_CUDA) sees none and refuses nothing: the job checks its own node with
`check_node` and fails in one line."""
from __future__ import annotations

import shutil
import subprocess


def problem(needed: tuple[int, int] | None, have: tuple[int, int] | None, what: str) -> str | None:
    """Why a GPU of capability `have` cannot run `what`, which needs `needed`; None where it can or
    where either is unknown."""
    if needed is None or have is None or tuple(have) >= tuple(needed):
        return None
    return (f"{what} needs CUDA compute capability {needed[0]}.{needed[1]} or higher (Ada, Hopper and later); "
            f"this GPU has {have[0]}.{have[1]}")


def parse(text: str) -> tuple[int, int] | None:
    """The lowest capability in nvidia-smi's `compute_cap` column ('9.0' per line), or None."""
    caps = []
    for line in text.split():
        major, _, minor = line.strip().partition(".")
        if major.isdigit() and minor.isdigit():
            caps.append((int(major), int(minor)))
    return min(caps) if caps else None


def visible() -> tuple[int, int] | None:
    """The lowest capability among this host's GPUs, or None (no nvidia-smi, or it cannot say)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse(out.stdout) if out.returncode == 0 else None


def check_node(needed: tuple[int, int] | None, device: str, what: str) -> None:
    """Inside a job: stop in one line when the GPU this job runs on is below `needed`."""
    if needed is None or not str(device).startswith("cuda"):
        return
    import torch

    why = problem(needed, torch.cuda.get_device_capability(torch.device(device)), what)
    if why:
        raise RuntimeError(why)
