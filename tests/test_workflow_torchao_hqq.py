"""torchao, HQQ and AWQ through the whole workflow: real Snakemake on a small toy DAG quantizes with
each (AWQ on the calibration texts), benchmarks and evaluates them, fine-tunes LoRA on HQQ, merges
the adapter into the original and into the dequantized HQQ weights, and lists the CUDA-only torchao
int4 method as skipped."""
from __future__ import annotations

import copy
import json

import pandas as pd
import yaml

from tests.conftest import copy_project, snakemake
from tests.test_interrupt import SMALL

NAME = "tiny-ao-hqq"
R = f"results/{NAME}"
HQQ = "hqq-4bit-g32"
AWQ = "awq-4bit-g32"


def _config() -> dict:
    cfg = copy.deepcopy(SMALL)
    cfg["model"]["name"] = NAME
    cfg["methods"] = {
        "fp32": {"backend": "none", "dtype": "float32"},
        "torchao-int8wo": {"backend": "torchao", "scheme": "int8-weight-only"},
        HQQ: {"backend": "hqq", "bits": 4, "group_size": 32},
        AWQ: {"backend": "awq", "bits": 4, "group_size": 32},
        "torchao-int4-g32": {"backend": "torchao", "scheme": "int4-weight-only", "group_size": 32},  # CUDA only
    }
    cfg["finetune"].update(bases=[HQQ], steps=20)
    cfg["recipes"] = [{"finetune_on": HQQ, "merge_into": ["fp", "dequant"]}]
    return cfg


def _record(work, stage, name) -> dict:
    return json.loads((work / R / "records" / stage / f"{name}.json").read_text())


def test_torchao_and_hqq_run_end_to_end(tmp_path):
    work = copy_project(tmp_path)
    (work / "small.yaml").write_text(yaml.safe_dump(_config(), sort_keys=False))
    snakemake(work, "--configfile", "small.yaml", timeout=1500)

    for method, kernel in (("torchao-int8wo", "torchao-int8-weight-only-cpu"), (HQQ, "hqq-pytorch-cpu"),
                           (AWQ, "AwqTorchLinear")):
        assert _record(work, "benchmark", method)["kernel"] == kernel
        quantize = _record(work, "quantize", method)["metrics"]
        assert quantize["quantize_s"] > 0 and quantize["size_on_disk_mb"] > 0
    # AWQ calibrated on the configured number of texts, which only calibrating backends are given.
    assert _record(work, "quantize", AWQ)["metrics"]["calibration_samples"] == _config()["data"]["calibration_samples"]
    ft = _record(work, "finetune", HQQ)["metrics"]
    assert ft["trainable_parameters"] > 0 and ft["loss_last"] < ft["loss_first"]

    summary = pd.read_csv(work / R / "report" / "summary.csv").set_index("variant")
    assert summary.loc["torchao-int8wo", "weights_memory_mb"] < summary.loc["fp32", "weights_memory_mb"]
    assert summary.loc[HQQ, "weights_memory_mb"] < summary.loc["torchao-int8wo", "weights_memory_mb"]
    assert summary.loc[AWQ, "weights_memory_mb"] < summary.loc["torchao-int8wo", "weights_memory_mb"]
    assert _record(work, "evaluate", AWQ)["metrics"]["kl_mean"] > 0
    quality = {v: _record(work, "evaluate", v)["metrics"] for v in ("torchao-int8wo", HQQ)}
    assert 0 < quality["torchao-int8wo"]["kl_mean"] < quality[HQQ]["kl_mean"], quality  # 8 bits move it less than 4
    # The adapter merged into the weights it was trained on (dequantized HQQ) reproduces the
    # fine-tuned model more closely than merged into the original ones.
    dequant = _record(work, "evaluate", f"{HQQ}+lora+merge-dequant")["metrics"]["kl_mean"]
    fp = _record(work, "evaluate", f"{HQQ}+lora+merge-fp")["metrics"]["kl_mean"]
    assert dequant < fp, (dequant, fp)

    report = (work / R / "report" / "report.md").read_text()
    assert "torchao-int4-g32" in report and "runs on CUDA only" in report
    assert not (work / R / "models" / "torchao-int4-g32").exists()
