"""Run one job's command on a GPU of its own, on a workstation with one GPU or several.

    python -m quantbench.gpu_slot -- python workflow/scripts/quantize.py ...

Snakemake counts GPUs (`--resources gpu=N`, which scripts/run.sh sets from the GPUs it sees) but does
not say which one a job gets: without this, every job would run on device 0. The job takes the
first free slot among the visible GPUs (CUDA_VISIBLE_DEVICES, else every GPU nvidia-smi lists), holds
a lock on it while the command runs and hands the command that GPU alone. Locks are per machine
(one folder under the temporary directory), so two workflows on one workstation share the slots;
a lock dies with its process, so a killed job frees its GPU. A job a cluster scheduler placed
(SLURM_JOB_ID) already has its own GPUs and runs as it is. A job that finds no GPU at all stops with
one line that says so.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def visible_gpus(environ: dict) -> list[str]:
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def lock_dir(environ: dict) -> Path:
    where = environ.get("QUANTBENCH_GPU_LOCKS") or Path(tempfile.gettempdir()) / f"quantbench-gpu-slots-{os.getuid()}"
    Path(where).mkdir(parents=True, exist_ok=True)
    return Path(where)


def acquire(gpus: list[str], folder: Path, poll_s: float = 1.0) -> tuple[str, int]:
    """The first free GPU and the open lock file that holds it; waits while every GPU is taken."""
    told = False
    while True:
        for gpu in gpus:
            fd = os.open(folder / f"gpu-{gpu}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return gpu, fd
        if not told:
            print(f"gpu_slot: all {len(gpus)} GPUs ({', '.join(gpus)}) are taken; waiting for one",
                  file=sys.stderr, flush=True)
            told = True
        time.sleep(poll_s)


def run(command: list[str], environ: dict) -> int:
    gpus = visible_gpus(environ)
    if not gpus:
        # On a cluster node the workflow's own CUDA check does not run (it plans on the submit host):
        # this is where a GPU job placed on a node without one stops, in one line.
        where = f"node {os.uname().nodename}" if environ.get("SLURM_JOB_ID") else "this machine"
        print(f"gpu_slot: this job loads a model on CUDA (device: cuda) but {where} shows no GPU "
              "(CUDA_VISIBLE_DEVICES is empty and nvidia-smi lists none)", file=sys.stderr, flush=True)
        return 1
    if environ.get("SLURM_JOB_ID"):
        return subprocess.call(command)  # the scheduler gave this job its GPUs
    gpu, fd = acquire(gpus, lock_dir(environ))
    print(f"gpu_slot: this job runs on GPU {gpu} (of {', '.join(gpus)})", file=sys.stderr, flush=True)
    child = subprocess.Popen(command, env={**environ, "CUDA_VISIBLE_DEVICES": gpu})
    # Snakemake stops a job with SIGTERM (or SIGINT on Ctrl-C): pass it on, keep the slot until the child ends.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _frame: child.send_signal(s))
    try:
        return child.wait()
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m quantbench.gpu_slot -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    return run(argv, dict(os.environ))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
