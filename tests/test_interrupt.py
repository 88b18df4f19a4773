"""Interruptions: a job killed mid-write leaves nothing a later run takes for finished, and a rerun
continues where the killed one stopped. Killed for real: SIGKILL to a writer process, and to the
whole process group of a running Snakemake (jobs included) during a GPTQ quantization and during a
LoRA fine-tune. The resumed run also shows the skip policy (a CUDA-only method on a CPU machine
appears in the report with its reason) and provenance (every record carries the config hash)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from quantbench.atomic import atomic_dir, atomic_file, leftovers, remove_leftovers
from tests.conftest import copy_project, snakemake

# --- one writer, killed mid-write ------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from quantbench.atomic import atomic_dir, atomic_file
    final = Path(sys.argv[1])
    ctx = atomic_dir(final) if sys.argv[2] == "dir" else atomic_file(final)
    with ctx as tmp:
        target = tmp / "weights.bin" if sys.argv[2] == "dir" else tmp
        with open(target, "wb") as f:
            f.write(b"half")
            f.flush()
            print("writing", flush=True)
            time.sleep(60)  # killed here
            f.write(b"-and-the-rest")
""")


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_writer_killed_mid_write_leaves_no_final_output(kind, tmp_path):
    final = tmp_path / ("model" if kind == "dir" else "record.json")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(final), kind], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not final.exists()
    [left] = leftovers(tmp_path)
    assert left.name.startswith(f".tmp-{final.name}.part-")
    # The next write of the same output clears the dead writer's leftover, and only that.
    other = tmp_path / ".tmp-model.v2.part-abc123"
    other.mkdir()
    with (atomic_dir(final) if kind == "dir" else atomic_file(final)) as tmp:
        (tmp / "weights.bin" if kind == "dir" else tmp).write_bytes(b"complete")
    assert not left.exists() and other.exists()
    assert remove_leftovers(final) == []


# --- Snakemake killed while jobs run, then resumed -------------------------------------------------

NAME = "tiny"
R = f"results/{NAME}"
SMALL = {
    "model": {"name": NAME, "source": "toy",
              "toy": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
                      "vocab_size": 320, "max_position_embeddings": 128, "train_steps": 20, "train_batch_size": 8,
                      "train_seq_len": 32, "learning_rate": 3.0e-3}},
    "device": "cpu", "seed": 7, "max_threads": 1, "unsupported_methods": "skip",
    "data": {"source": "toy", "calibration_samples": 8, "calibration_seq_len": 32},
    "methods": {
        "fp32": {"backend": "none", "dtype": "float32"},
        "bnb-nf4": {"backend": "bnb", "bits": 4, "quant_type": "nf4"},
        "gptq-4bit-g32": {"backend": "gptq", "bits": 4, "group_size": 32, "kernel": "torch"},
        "gptq-4bit-marlin": {"backend": "gptq", "bits": 4, "group_size": 32, "kernel": "marlin"},  # CUDA only
    },
    "baseline": "fp32",
    "finetune": {"bases": ["bnb-nf4"], "steps": 100, "batch_size": 2, "seq_len": 32, "learning_rate": 1.0e-3,
                 "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}},
    "benchmark": {"exclusive": False, "warmup": 0, "repeats": 1, "roofline": False,
                  "prefill": {"prompt_len": 8, "batch_sizes": [1]},
                  "generate": {"prompt_len": 4, "new_tokens": [2], "batch_sizes": [1], "use_cache": [True]}},
    "evaluate": {"suite": "toy", "limit": 4, "batch_size": 8, "distribution_tokens": 256, "distribution_window": 64},
}


def _jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table Snakemake prints before it starts."""
    table = output[output.index("Job stats:"):]
    table = table[:table.index("total")]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def _run_until(work: Path, targets: list[str], ready, log: Path, timeout: float = 300) -> str:
    """Start a real `snakemake --cores 1` (one job at a time, so exactly one job is running when it
    is killed); when ready() holds, SIGKILL its whole process group, jobs included."""
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "snakemake", *targets, "--cores", "1",
                                 "--configfile", "small.yaml"],
                                cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})  # its log survives the kill
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"snakemake ended before the kill point:\n{log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"kill point not reached in {timeout} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.05)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # it had already ended: the assertion above says why
            pass
        proc.wait(timeout=60)
    for _ in range(200):  # until every process of the group (the jobs) is gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    return log.read_text()


def _finetune_training(work: Path) -> bool:
    log = work / R / "logs/finetune/bnb-nf4.log"
    return log.exists() and "LoRA fine-tune" in log.read_text(errors="replace")


def test_killed_runs_resume_and_nothing_half_written_is_taken_as_finished(tmp_path):
    from safetensors import safe_open

    work = copy_project(tmp_path)
    (work / "small.yaml").write_text(yaml.safe_dump(SMALL, sort_keys=False))
    models = work / R / "models"

    # 1. Killed while GPTQ quantizes: its temporary folder exists, the model folder does not.
    _run_until(work, [f"{R}/records/quantize/gptq-4bit-g32.json"],
               lambda: any(models.glob(".tmp-gptq-4bit-g32.part-*")), tmp_path / "run1.log")
    assert not (models / "gptq-4bit-g32").exists()
    assert not (work / R / "records/quantize/gptq-4bit-g32.json").exists()
    assert (models / "base" / "quantbench.json").exists()  # what exists under a final name is complete

    # The kill leaves Snakemake's lock behind: the next run says so and names --unlock.
    locked = snakemake(work, "--configfile", "small.yaml", check=False, timeout=300)
    assert locked.returncode != 0 and "Directory cannot be locked" in locked.stdout + locked.stderr
    assert "--unlock" in locked.stdout + locked.stderr
    snakemake(work, "--unlock", "--configfile", "small.yaml", timeout=300)

    # 2. Resumed: finished work is reused (no toy rebuild; the killed quantization reruns), and
    #    killed again, during the LoRA fine-tune.
    out2 = _run_until(work, [f"{R}/records/quantize/gptq-4bit-g32.json", f"{R}/records/finetune/bnb-nf4.json"],
                      lambda: _finetune_training(work), tmp_path / "run2.log")
    assert _jobs(out2) == {"quantize": 2, "finetune": 1}, out2[-3000:]
    gptq_done = (models / "gptq-4bit-g32").exists()  # the order of the two jobs is Snakemake's choice
    assert not gptq_done or (models / "gptq-4bit-g32" / "quantbench.json").exists()
    assert not (work / R / "adapters" / "bnb-nf4+lora").exists()
    assert not (work / R / "records/finetune/bnb-nf4.json").exists()

    # 3. Resumed to the end: no --rerun-incomplete needed, since the killed jobs left no outputs.
    snakemake(work, "--unlock", "--configfile", "small.yaml", timeout=300)
    run3 = snakemake(work, "--configfile", "small.yaml", timeout=900)
    out3 = run3.stdout + run3.stderr
    jobs3 = _jobs(out3)
    assert "build_toy_model" not in jobs3 and jobs3["finetune"] == 1, jobs3
    assert jobs3["quantize"] == (1 if gptq_done else 2), jobs3  # fp32 was never a target before
    assert "method=bnb-nf4\n" not in out3 and "method=fp32\n" in out3
    assert "Nothing to be done" in snakemake(work, "-n", "--configfile", "small.yaml", timeout=300).stdout

    # Nothing temporary was promoted or left behind; every output is complete and loads.
    assert leftovers(work / "results") == []
    for folder in [*models.iterdir(), work / R / "adapters" / "bnb-nf4+lora"]:
        weights = sorted(folder.glob("*.safetensors"))
        assert weights, folder
        for w in weights:
            with safe_open(str(w), "pt") as f:
                assert all(f.get_tensor(k).numel() > 0 for k in f.keys())
    assert {p.name for p in models.iterdir()} == {"base", "fp32", "bnb-nf4", "gptq-4bit-g32"}
    records = [json.loads(p.read_text()) for p in (work / R / "records").rglob("*.json")]
    assert len(records) >= 13 and all(r["status"] == "ok" for r in records)
    bench = {r["subject"] for r in records if r["stage"] == "benchmark"}
    assert bench == {"fp32", "bnb-nf4", "gptq-4bit-g32", "bnb-nf4+lora"}  # every model loaded and ran

    # Provenance: every record, from all three runs, carries the same config hash.
    hashes = {r["provenance"]["config_hash"] for r in records}
    assert len(hashes) == 1 and re.fullmatch(r"[0-9a-f]{16}", hashes.pop())
    assert all(r["provenance"]["git_commit"] and r["provenance"]["seed"] == 7 for r in records)

    # The skip policy: the CUDA-only method is not run, and the report says why.
    report = (work / R / "report" / "report.md").read_text()
    section = report[report.index("## Skipped methods"):]
    assert "gptq-4bit-marlin" in section.split("##")[1] and "runs on CUDA only" in section.split("##")[1]
    assert not (work / R / "records/quantize/gptq-4bit-marlin.json").exists()
