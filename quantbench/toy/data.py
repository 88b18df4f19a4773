"""Write the toy default's local data files: training corpus, calibration text, fine-tuning pairs,
held-out text and the multiple-choice tasks. Every file is JSON lines."""
from __future__ import annotations

import json
from pathlib import Path

from quantbench.atomic import atomic_dir
from quantbench.toy import world

# One seed offset per file, so adding a file never changes the contents of another.
FILES = {
    "corpus": 0, "calibration": 1, "finetune": 2, "heldout": 3,
    "capitals": 4, "flags": 5, "arithmetic": 6, "fewshot": 7,
}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


# GPTQ calibrates on at most this many texts of the toy data (validation checks data.calibration_samples).
CALIBRATION_TEXTS = 256


def build(out_dir: str | Path, seed: int, n_corpus_docs: int = 6000) -> None:
    countries = world.make_countries(seed)
    s = {name: seed * 100 + offset for name, offset in FILES.items()}
    with atomic_dir(out_dir) as tmp:
        _write_jsonl(tmp / "corpus.jsonl",
                     [{"text": t} for t in world.documents(countries, s["corpus"], n_corpus_docs)])
        _write_jsonl(tmp / "calibration.jsonl",
                     [{"text": t} for t in world.documents(countries, s["calibration"], CALIBRATION_TEXTS)])
        _write_jsonl(tmp / "heldout.jsonl",
                     [{"text": t} for t in world.documents(countries, s["heldout"], 128)])
        _write_jsonl(tmp / "finetune.jsonl", world.instruction_pairs(countries, s["finetune"], 400))
        capitals = world.capital_questions(countries, s["capitals"])
        flags = world.flag_questions(countries, s["flags"])
        arithmetic = world.arithmetic_questions(s["arithmetic"])
        # Few-shot examples come from their own rows, never from the rows being scored.
        _write_jsonl(tmp / "capitals.jsonl", capitals[4:])
        _write_jsonl(tmp / "capitals_fewshot.jsonl", capitals[:4])
        _write_jsonl(tmp / "flags.jsonl", flags[4:])
        _write_jsonl(tmp / "flags_fewshot.jsonl", flags[:4])
        _write_jsonl(tmp / "arithmetic.jsonl", arithmetic[4:])
        _write_jsonl(tmp / "arithmetic_fewshot.jsonl", arithmetic[:4])


def read_texts(path: str | Path) -> list[str]:
    with open(path) as f:
        return [json.loads(line)["text"] for line in f if line.strip()]
