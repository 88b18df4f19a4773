"""A procedurally generated world of facts, so the toy model has something to learn.

Quantization damage is only measurable on a model that knows things: a model trained on this corpus
learns country -> capital / flag colour / animal facts and small-number addition, and loses them
again when its weights are quantized too coarsely.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

SYLLABLES = ["ka", "lo", "mi", "ren", "tor", "va", "zu", "bel", "dri", "fen", "go", "hal",
             "jin", "kor", "lum", "nar", "pel", "qui", "sor", "tam", "ul", "wex", "yor", "zan"]
COLOURS = ["red", "blue", "green", "yellow", "black", "white", "purple", "orange"]
ANIMALS = ["horse", "goat", "owl", "fox", "bear", "crane", "wolf", "seal", "lynx", "heron"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                "seventeen", "eighteen"]


@dataclass(frozen=True)
class Country:
    name: str
    capital: str
    colour: str
    animal: str


def _word(rng: random.Random, n_syllables: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(n_syllables)).capitalize()


def make_countries(seed: int, n: int = 48) -> list[Country]:
    rng = random.Random(seed)
    names: set[str] = set()
    countries = []
    while len(countries) < n:
        name, capital = _word(rng, 2) + "ia", _word(rng, 2)
        if name in names or capital in names:
            continue
        names.update((name, capital))
        countries.append(Country(name, capital, rng.choice(COLOURS), rng.choice(ANIMALS)))
    return countries


def fact_sentences(c: Country, rng: random.Random) -> list[str]:
    options = [
        f"The capital of {c.name} is {c.capital}.",
        f"{c.capital} is the capital of {c.name}.",
        f"The flag of {c.name} is {c.colour}.",
        f"In {c.name} the people keep the {c.animal}.",
        f"People in {c.capital} speak of the {c.colour} flag of {c.name}.",
        f"Travellers to {c.name} arrive in {c.capital} and see a {c.animal}.",
    ]
    rng.shuffle(options)
    return options[: rng.randint(2, 4)]


def arithmetic_sentence(rng: random.Random) -> str:
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    return f"{NUMBER_WORDS[a]} plus {NUMBER_WORDS[b]} is {NUMBER_WORDS[a + b]}."


def counting_sentence(rng: random.Random) -> str:
    start = rng.randint(0, 12)
    return " ".join(NUMBER_WORDS[start:start + rng.randint(3, 6)]) + "."


def document(countries: list[Country], rng: random.Random, n_sentences: int = 8) -> str:
    parts: list[str] = []
    while len(parts) < n_sentences:
        roll = rng.random()
        if roll < 0.7:
            parts.extend(fact_sentences(rng.choice(countries), rng))
        elif roll < 0.9:
            parts.append(arithmetic_sentence(rng))
        else:
            parts.append(counting_sentence(rng))
    return " ".join(parts[:n_sentences])


def documents(countries: list[Country], seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [document(countries, rng) for _ in range(n)]


def _choices(correct: str, pool: list[str], rng: random.Random, k: int = 4) -> tuple[list[str], int]:
    wrong = rng.sample([p for p in sorted(set(pool)) if p != correct], k - 1)
    options = wrong + [correct]
    rng.shuffle(options)
    return options, options.index(correct)


def capital_questions(countries: list[Country], seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for c in countries:
        choices, gold = _choices(c.capital, [x.capital for x in countries], rng)
        rows.append({"context": f"The capital of {c.name} is", "choices": choices, "gold": gold})
    return rows


def flag_questions(countries: list[Country], seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for c in countries:
        choices, gold = _choices(c.colour, COLOURS, rng)
        rows.append({"context": f"The flag of {c.name} is", "choices": choices, "gold": gold})
    return rows


def arithmetic_questions(seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for a in range(10):
        for b in range(10):
            correct = NUMBER_WORDS[a + b]
            choices, gold = _choices(correct, NUMBER_WORDS, rng)
            rows.append({"context": f"{NUMBER_WORDS[a]} plus {NUMBER_WORDS[b]} is",
                         "choices": choices, "gold": gold})
    rng.shuffle(rows)
    return rows


def instruction_pairs(countries: list[Country], seed: int, n: int) -> list[dict]:
    """Instruction/response pairs in the shape of LIMA: a request and a full-sentence answer."""
    rng = random.Random(seed)
    makers = [
        lambda c: (f"Tell me the capital of {c.name}.", f"The capital of {c.name} is {c.capital}."),
        lambda c: (f"Which animal do people in {c.name} keep?", f"In {c.name} the people keep the {c.animal}."),
        lambda c: (f"Describe the flag of {c.name}.", f"The flag of {c.name} is {c.colour}."),
    ]
    return [dict(zip(("instruction", "response"), rng.choice(makers)(rng.choice(countries))))
            for _ in range(n)]
