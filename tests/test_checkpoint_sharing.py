"""Checkpoints that would be written twice are written once: methods differing only in a load-time
choice (the GPTQ kernel) share one quantize job, and an unquantized method in the base's own dtype
links the base. Checked on a real Snakemake run of a small toy DAG, then by loading the shared
checkpoint through its own method."""
from __future__ import annotations

import copy
import json
import os

import torch
import yaml

from quantbench import validation
from quantbench.loading import load_model
from quantbench.modelio import RunContext, read_meta
from tests.conftest import copy_project, snakemake
from tests.test_interrupt import SMALL

NAME = "share-toy"
R = f"results/{NAME}"


def _config() -> dict:
    cfg = copy.deepcopy(SMALL)
    cfg["model"]["name"] = NAME
    cfg["methods"] = {
        "fp32": {"backend": "none", "dtype": "float32"},
        "gptq-4bit-g32": {"backend": "gptq", "bits": 4, "group_size": 32, "kernel": "torch"},
        "gptq-4bit-g32-again": {"backend": "gptq", "bits": 4, "group_size": 32, "kernel": "torch"},
        "gptq-8bit-g32": {"backend": "gptq", "bits": 8, "group_size": 32, "kernel": "torch"},
    }
    cfg["finetune"]["bases"] = ["fp32"]
    return cfg


def test_owner_is_the_first_method_with_the_same_stored_parameters():
    cfg = _config()
    cfg["methods"]["gptq-4bit-g32-marlin"] = {"backend": "gptq", "bits": 4, "group_size": 32, "kernel": "marlin"}
    exp = validation.build(cfg, cuda_available=True)
    assert exp.checkpoint_of("gptq-4bit-g32") == "gptq-4bit-g32"
    assert exp.checkpoint_of("gptq-4bit-g32-again") == "gptq-4bit-g32"
    assert exp.checkpoint_of("gptq-4bit-g32-marlin") == "gptq-4bit-g32"  # differs in kernel only
    assert exp.checkpoint_of("gptq-8bit-g32") == "gptq-8bit-g32"
    assert exp.checkpoint_of("fp32") == "fp32"
    # A skipped method owns nothing: without CUDA the Marlin method is skipped, the others unchanged.
    cpu = validation.build(cfg, cuda_available=False)
    assert "gptq-4bit-g32-marlin" in cpu.skipped and cpu.checkpoint_of("gptq-4bit-g32-again") == "gptq-4bit-g32"


def test_shared_checkpoint_is_linked_and_loads_with_its_own_method(tmp_path):
    work = copy_project(tmp_path)
    (work / "small.yaml").write_text(yaml.safe_dump(_config(), sort_keys=False))
    targets = [f"{R}/records/quantize/{m}.json" for m in ("fp32", "gptq-4bit-g32-again", "gptq-8bit-g32")]
    run = snakemake(work, *targets, "--configfile", "small.yaml", timeout=900)
    out = run.stdout + run.stderr
    stats = out[out.index("Job stats:"):]
    assert "reuse_checkpoint" in stats
    # gptq-4bit-g32 quantized once (for its sharer), gptq-8bit-g32 and fp32 on their own
    assert "method=gptq-4bit-g32\n" in out and "method=gptq-8bit-g32\n" in out

    models = work / R / "models"
    owner, sharer = models / "gptq-4bit-g32", models / "gptq-4bit-g32-again"
    weights = sorted(p.relative_to(owner) for p in owner.rglob("*.safetensors"))
    assert weights
    for rel in weights:  # the same files on disk, not copies
        assert os.stat(owner / rel).st_ino == os.stat(sharer / rel).st_ino
    assert read_meta(sharer)["method"] == "gptq-4bit-g32-again"
    assert read_meta(sharer)["checkpoint_of"] == "gptq-4bit-g32"
    assert read_meta(owner)["method"] == "gptq-4bit-g32"  # the owner's own file is untouched
    rec = json.loads((work / R / "records/quantize/gptq-4bit-g32-again.json").read_text())
    assert rec["metrics"]["checkpoint_of"] == "gptq-4bit-g32" and rec["subject"] == "gptq-4bit-g32-again"

    # fp32 is the base's own dtype: linked, not re-saved
    base, fp32 = models / "base", models / "fp32"
    for p in base.rglob("*.safetensors"):
        assert os.stat(p).st_ino == os.stat(fp32 / p.relative_to(base)).st_ino
    assert read_meta(fp32)["method"] == "fp32" and read_meta(base)["method"] == "base"

    # Linking must not date the sources: nothing downstream of base or of the owner reruns.
    assert not (base / ".snakemake_timestamp").samefile(fp32 / ".snakemake_timestamp")
    dry = snakemake(work, *targets, "-n", "--configfile", "small.yaml", timeout=300)
    assert "Nothing to be done" in dry.stdout, dry.stdout[-2000:]

    model, tok, info = load_model(str(sharer), RunContext(device="cpu", dtype_name="float32"))
    assert info["method"] == "gptq-4bit-g32-again" and "Linear" in info["kernel"]
    with torch.inference_mode():
        logits = model(**tok(["the capital of"], return_tensors="pt")).logits
    assert torch.isfinite(logits).all()
