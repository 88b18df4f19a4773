"""Text data for calibration, fine-tuning and held-out evaluation: the toy default's local files, or
any dataset `datasets.load_dataset` reads (a hub id, or a local json/csv/text file)."""
from __future__ import annotations

from pathlib import Path


def _format_pair(row: dict) -> str:
    if "conversations" in row:  # LIMA: [request, response, ...]
        turns = row["conversations"]
        return f"### Instruction:\n{turns[0]}\n### Response:\n{turns[1]}"
    return f"### Instruction:\n{row['instruction']}\n### Response:\n{row['response']}"


def load_texts(spec: dict | str, n: int | None = None, kind: str = "text") -> list[str]:
    """Load up to n texts. `spec` is a path to a JSON-lines file, or a mapping of
    load_dataset arguments plus `text_field`. `kind` 'instruction' formats request/response pairs."""
    from datasets import load_dataset

    if isinstance(spec, (str, Path)):
        ds = load_dataset("json", data_files=str(spec), split="train")
        text_field = "text"
    else:
        spec = dict(spec)
        text_field = spec.pop("text_field", "text")
        split = spec.pop("split", "train")
        ds = load_dataset(spec.pop("path"), spec.pop("name", None), split=split, **spec)
    texts = []
    for row in ds:
        text = _format_pair(row) if kind == "instruction" else row[text_field]
        if text and text.strip():
            texts.append(text)
        if n is not None and len(texts) >= n:
            break
    if not texts:
        raise ValueError(f"no texts found in {spec!r} (field {text_field!r})")
    return texts
