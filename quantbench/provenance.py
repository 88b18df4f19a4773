"""Provenance for result records: what produced a number, where, with which code and libraries."""
from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

from quantbench import numerics

LIBRARIES = ("torch", "transformers", "bitsandbytes", "gptqmodel", "torchao", "hqq", "exllamav3", "peft",
             "accelerate", "lm_eval", "datasets", "optimum", "snakemake")


def library_versions() -> dict[str, str | None]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


CODE_PATHS = ("quantbench", "workflow", "Snakefile", "scripts", "envs", "requirements.txt", "requirements-data.txt")


def git_commit() -> str:
    """Commit of the quantbench checkout, with '+dirty' when its code has uncommitted changes. Code only:
    configs are recorded by hash (config_hash), and results/, docs and tests do not change a number."""
    if os.environ.get("QB_GIT_COMMIT"):
        # Told explicitly: a copy of the tree whose .git (if any) is not the one it came from.
        return os.environ["QB_GIT_COMMIT"]
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_description(device: str) -> dict:
    import torch

    info = {"device": device, "host": socket.gethostname(), "cpu": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu_threads"] = torch.get_num_threads()
    # The model name alone hides what selects kernels (a hypervisor shows every EPYC as "AMD EPYC")
    info["cpu_flags"] = numerics.cpu_flags()
    info["kernels"] = numerics.kernel_settings()
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_mb=props.total_memory / 2**20,
                    cuda=torch.version.cuda, gpu_capability=f"{props.major}.{props.minor}")
    return info


def params_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def provenance(device: str, seed: int, params: dict, started: str) -> dict:
    return {
        "libraries": library_versions(),
        "git_commit": git_commit(),
        **device_description(device),
        "seed": seed,
        "params_hash": params_hash(params),
        # hash of the whole config the workflow ran with (set by workflow/rules/common.smk); records
        # of one report may differ here after a config edit reran only the jobs it affected
        "config_hash": os.environ.get("QUANTBENCH_CONFIG_HASH"),
        "command": " ".join(sys.argv),
        "started": started,
        "finished": now(),
    }
