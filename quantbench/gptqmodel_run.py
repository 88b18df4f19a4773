"""GPTQModel's calibrated quantization, written once for GPTQ, AWQ and the encoder path: the
environment it needs, calibration rows from texts, and the quantize call with its per-layer logs
kept out of the working directory."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def environment() -> None:
    """Set before GPTQModel loads a model: its loader pool asks for 2 workers and fails on machines
    with fewer cores (PITFALLS). The one place quantbench sets it; a value set by the user is kept."""
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")


def calibration_rows(tokenizer, texts: list[str], seq_len: int) -> list[dict]:
    """Texts as GPTQModel's calibration rows, each cut at seq_len tokens."""
    return [{"input_ids": ids, "attention_mask": [1] * len(ids)}
            for ids in (tokenizer(t, truncation=True, max_length=seq_len).input_ids for t in texts)]


def quantized(src: str, config, rows: list[dict], device: str, seq_len: int, batch_size: int = 1,
              dtype=None, **quantize_kwargs):
    """GPTQModel's model at `src` quantized with `config` (a QuantizeConfig or AWQConfig) on `rows`;
    not yet saved (model.save(path) writes it)."""
    environment()
    from gptqmodel import GPTQModel
    from gptqmodel.looper import loop_processor

    model = GPTQModel.load(src, config, device=device, **({} if dtype is None else {"dtype": dtype}))
    with tempfile.TemporaryDirectory() as logs:
        # GPTQModel writes per-layer logs to ./logs of whatever the working directory is.
        loop_processor._PROJECT_LOG_DIR = Path(logs)
        model.quantize(rows, batch_size=batch_size, calibration_data_min_length=min(10, seq_len),
                       **quantize_kwargs)
    return model
