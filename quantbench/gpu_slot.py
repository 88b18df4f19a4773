"""Run one job's command on a GPU of its own, on a workstation with one GPU or several.

    python -m quantbench.gpu_slot [--share N] [--alone] -- python workflow/scripts/quantize.py ...

Snakemake counts GPUs (`--resources gpu=N`, which scripts/run.sh sets from the GPUs it sees) but does
not say which one a job gets: without this, every job would run on device 0. The job takes the
first free slot among the visible GPUs (CUDA_VISIBLE_DEVICES, else every GPU nvidia-smi lists), holds
a lock on it while the command runs and hands the command that GPU alone. Locks are per machine
(one folder under the temporary directory), so two workflows on one workstation share the slots;
a lock dies with its process, so a killed job frees its GPU. A job a cluster scheduler placed
(SLURM_JOB_ID) already has its own GPUs and runs as it is. A job that finds no GPU at all stops with
one line that says so.

A GPU far larger than the model (a 135M model on an 80 GB card) would sit idle with one job at a
time: `--share N` (the config's `jobs_per_gpu`) gives each GPU N slots, and `--alone` (a benchmark that
must not share its GPU) takes every slot of one GPU at once.
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


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _take(gpu: str, folder: Path, share: int, alone: bool) -> list[int]:
    """The lock files this job holds on `gpu`: one free slot, or (alone) all of them; [] if not free."""
    held: list[int] = []
    for k in range(share):
        fd = _try_lock(folder / f"gpu-{gpu}.{k}.lock")
        if fd is not None:
            held.append(fd)
            if not alone:
                return held
        elif alone:
            break
    if alone and len(held) == share:
        return held
    for fd in held:
        os.close(fd)
    return []


def acquire(gpus: list[str], folder: Path, share: int = 1, alone: bool = False,
            poll_s: float = 1.0) -> tuple[str, list[int]]:
    """The first GPU with a free slot (alone: with every slot free) and the open lock files that hold
    it; waits while there is none."""
    told = False
    while True:
        for gpu in gpus:
            held = _take(gpu, folder, share, alone)
            if held:
                return gpu, held
        if not told:
            what = "a whole GPU" if alone and share > 1 else "a free slot"
            print(f"gpu_slot: waiting for {what} ({len(gpus)} GPUs: {', '.join(gpus)}; {share} jobs per GPU)",
                  file=sys.stderr, flush=True)
            told = True
        time.sleep(poll_s)


def run(command: list[str], environ: dict, share: int = 1, alone: bool = False) -> int:
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
    gpu, held = acquire(gpus, lock_dir(environ), share, alone)
    how = " alone" if alone and share > 1 else ""
    print(f"gpu_slot: this job runs{how} on GPU {gpu} (of {', '.join(gpus)})", file=sys.stderr, flush=True)
    child = subprocess.Popen(command, env={**environ, "CUDA_VISIBLE_DEVICES": gpu})
    # Snakemake stops a job with SIGTERM (or SIGINT on Ctrl-C): pass it on, keep the slot until the child ends.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _frame: child.send_signal(s))
    try:
        return child.wait()
    finally:
        for fd in held:
            os.close(fd)


def jobs_per_gpu(argv: list[str]) -> int:
    """`jobs_per_gpu` as a Snakemake command line sets it: --config jobs_per_gpu=N, else the last
    --configfile that names it, else 1 (the embedded default names none)."""
    import yaml

    from quantbench.config_file import configfiles_in

    sets, flag = {}, None
    for word in argv:
        if word.startswith("-"):
            flag = word
        elif flag == "--config" and "=" in word:
            key, _, value = word.partition("=")
            sets[key] = value
    if "jobs_per_gpu" in sets:
        return int(sets["jobs_per_gpu"])
    found = 1
    for path in configfiles_in(argv):
        try:
            found = (yaml.safe_load(Path(path).read_text()) or {}).get("jobs_per_gpu", found)
        except (OSError, yaml.YAMLError, AttributeError):
            pass  # the workflow's own checks name the file and the problem
    return int(found)


def slots_on_this_machine(argv: list[str]) -> int:
    """What --resources gpu= a local run gets: GPU jobs that may run at once (0 without a GPU)."""
    return len(visible_gpus(dict(os.environ))) * jobs_per_gpu(argv)


USAGE = "usage: python -m quantbench.gpu_slot [--share N] [--alone] -- COMMAND [ARGS...]"


def main(argv: list[str]) -> int:
    share, alone = 1, False
    while argv and argv[0].startswith("--") and argv[0] != "--":
        if argv[0] == "--alone":
            alone, argv = True, argv[1:]
        elif argv[0] == "--share" and len(argv) > 1 and argv[1].isdigit() and int(argv[1]) >= 1:
            share, argv = int(argv[1]), argv[2:]
        else:
            print(f"gpu_slot: unknown option {argv[0]!r}; {USAGE}", file=sys.stderr)
            return 2
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    return run(argv, dict(os.environ), share, alone)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
