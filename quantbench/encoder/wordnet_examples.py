"""Real sentences for the encoder: the example sentences of a WordNet data file (data.noun, ...).

A data line is `offset lex_filenum ss_type ... | gloss; "example one"; "example two"`; the quoted
parts after the gloss are real usage examples written by lexicographers."""
from __future__ import annotations

import re
from pathlib import Path

from quantbench import package_paths

DATA_FILE_RE = re.compile(r"(^|/)data\.(noun|verb|adj|adv)$")
# Quoted examples of reasonable length: 1-2 word fragments say little about a sentence encoder.
EXAMPLE_RE = re.compile(r'"([^"]{15,300})"')


def is_wordnet_data_file(path: str) -> bool:
    return bool(DATA_FILE_RE.search(path))


def examples(path: str | Path) -> list[str]:
    """Unique example sentences in file order (the license header lines start with spaces)."""
    path = Path(package_paths.resolve(str(path)))
    seen: set[str] = set()
    out: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(" ") or "|" not in line:
                continue
            for text in EXAMPLE_RE.findall(line.split("|", 1)[1]):
                text = text.strip()
                if text not in seen:
                    seen.add(text)
                    out.append(text)
    return out
