"""Load and save model folders. Every folder quantbench writes carries `quantbench.json`, naming the
method that produced it, so any later stage loads it through the right backend."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

META_FILE = "quantbench.json"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; allowed: {', '.join(DTYPES)}")
    return DTYPES[name]


@dataclass
class RunContext:
    """What a stage needs to know about where and how it runs."""
    device: str = "cpu"
    dtype_name: str = "float32"
    seed: int = 0
    calibration_texts: list[str] = field(default_factory=list)
    calibration_seq_len: int = 512
    calibration_batch_size: int = 1
    sensitivity: list = field(default_factory=list)  # sensitivity records a mixed-precision method reads
    size_of: dict | None = None  # the quantize record whose measured size is a mix's budget

    @property
    def dtype(self) -> torch.dtype:
        return torch_dtype(self.dtype_name)


def load_tokenizer(path: str):
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # decoder-only batched generation pads on the left
    return tokenizer


def load_causal_lm(path: str, device: str, dtype: torch.dtype):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, device_map=device)
    return model.eval(), load_tokenizer(path)


def write_meta(folder: Path, meta: dict) -> None:
    with open(Path(folder) / META_FILE, "w") as f:
        json.dump(meta, f, indent=2)


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / META_FILE
    if not path.exists():
        raise FileNotFoundError(f"{folder} is not a quantbench model folder (no {META_FILE})")
    with open(path) as f:
        return json.load(f)


def link_tree(src: str | Path, dst: str | Path, skip: tuple[str, ...] = (META_FILE,)) -> None:
    """Fill dst with hard links to src's files (copies across file systems): a second name for a
    checkpoint costs no disk, which matters for 13B-parameter folders. Snakemake's own marker files
    are left out: it touches `.snakemake_timestamp` in a finished output folder, and touching a
    linked one would date the source folder too (and rerun everything downstream of it)."""
    import os
    import shutil

    for path in sorted(Path(src).rglob("*")):
        rel = path.relative_to(src)
        if rel.as_posix() in skip or rel.name.startswith(".snakemake"):
            continue
        if path.is_dir():
            (Path(dst) / rel).mkdir(parents=True, exist_ok=True)
            continue
        (Path(dst) / rel).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, Path(dst) / rel)
        except OSError:
            shutil.copy2(path, Path(dst) / rel)


def folder_size_mb(folder: str | Path) -> float:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2**20
