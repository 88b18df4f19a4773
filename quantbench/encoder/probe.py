"""Whether a quantized encoder of any modality runs: quantize it, reload the saved folder through
the method's library, run a batch of its own kind of input (synthetic) and compare the outputs with
the unquantized model's on the same batch; or say where (quantize, load, run) and why the library
refused. On random weights the comparison checks that the quantized layers compute about the same
function; it is not a quality figure."""
from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from quantbench.backends import UNQUANTIZED
from quantbench.encoder import loading
from quantbench.encoder.quantize import Unsupported, quantize
from quantbench.memory import model_weights_mb
from quantbench.modelio import folder_size_mb
from quantbench.timing import repeat, summarize

log = logging.getLogger(__name__)
# GPTQ's calibration rows for a random-weight encoder: synthetic inputs drawn with other seeds than
# the measured batch; enough for GPTQ's Hessians on these widths.
CALIBRATION_ROWS = 8
# What a library raises when it cannot reload or run a model it quantized; anything else is a bug
# of ours and stops the job.
REFUSALS = (ValueError, TypeError, NotImplementedError, KeyError, AttributeError, RuntimeError)
BASELINE = {"backend": UNQUANTIZED, "params": {"dtype": "float32"}}


@torch.inference_mode()
def outputs(model, inputs: dict[str, torch.Tensor], device: str) -> torch.Tensor:
    """The last hidden states, float32 on the CPU."""
    return model(**{k: v.to(device) for k, v in inputs.items()}).last_hidden_state.float().cpu()


def compare(out: torch.Tensor, reference: torch.Tensor) -> dict:
    """Each example's hidden states (flattened) against the unquantized model's: cosine mean and
    minimum, and whether every value is finite."""
    if out.shape != reference.shape:
        raise ValueError(f"outputs of shape {tuple(out.shape)} against the unquantized {tuple(reference.shape)}")
    finite = bool(torch.isfinite(out).all())
    cos = F.cosine_similarity(out.flatten(1).double(), reference.flatten(1).double(), dim=1)
    return {"finite_outputs": finite,
            "output_cosine_mean": cos.mean().item() if finite else math.nan,
            "output_cosine_min": cos.min().item() if finite else math.nan}


def _refused(stage: str, refusal: Unsupported, metrics: dict) -> dict:
    info = refusal.summary()
    log.warning("refused at %s: %s", stage, refusal)
    return {"outcome": "unsupported", "failed_at": stage, "reason": f"{info['error_type']}: {info['error']}",
            "error": info, "metrics": metrics}


def run(model_dir: str, method: dict, device: str, inputs: dict, calibration: list[dict], seq_len: int,
        warmup: int, repeats: int) -> dict:
    """{outcome, metrics} and, unless outcome is ok, failed_at, reason and the library's error.
    The quantized folder lives in a temporary directory: only the record is kept."""
    reference = outputs(loading.load_encoder(model_dir, BASELINE, device)[0], inputs, device)
    with tempfile.TemporaryDirectory(prefix="quantbench-probe-") as folder:
        t0 = time.perf_counter()
        try:
            extra = quantize(model_dir, Path(folder), method, device, calibration, seq_len)
        except Unsupported as refusal:
            return _refused("quantize", refusal, {})
        metrics = {"quantize_s": time.perf_counter() - t0, "size_on_disk_mb": folder_size_mb(folder), **extra}
        stage = "load"
        try:
            model, kernel = loading.load_encoder(folder, method, device, extra.get("route"))
            stage = "run"
            agreement = compare(outputs(model, inputs, device), reference)
            times = repeat(lambda: outputs(model, inputs, device), device, warmup=warmup, repeats=repeats)
        except REFUSALS as err:
            return _refused(stage, Unsupported(err), metrics)
    timing = summarize(times)
    metrics.update(kernel=kernel, quantized_linear_layers=loading.quantized_layers(model),
                   weights_memory_mb=model_weights_mb(model), forward_ms_per_batch=timing["median_s"] * 1e3,
                   forward_iqr_over_median=timing["iqr_over_median"], forward_timing_s=timing, **agreement)
    if not agreement["finite_outputs"]:
        return {"outcome": "wrong_output", "failed_at": "run", "reason": "non-finite outputs", "metrics": metrics}
    return {"outcome": "ok", "metrics": metrics}
