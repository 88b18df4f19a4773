"""The sentences an encoder embeds: a JSON-lines file of {"text": ...} rows."""
from __future__ import annotations

import json
from pathlib import Path

from quantbench import package_paths


def read_sentences(path: str | Path, limit: int | None = None) -> list[str]:
    """Non-empty texts in file order, at most `limit`. Raises ValueError naming the file and line."""
    path = Path(package_paths.resolve(str(path)))
    out: list[str] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path}: line {lineno} is not JSON; expected {{\"text\": ...}} rows") from None
            text = row.get("text") if isinstance(row, dict) else None
            if not isinstance(text, str):
                raise ValueError(f"{path}: line {lineno} has no string 'text' field; expected {{\"text\": ...}} rows")
            if text.strip():
                out.append(text.strip())
            if limit is not None and len(out) >= limit:
                break
    return out
