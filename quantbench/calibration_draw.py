"""Calibration draws of a method's replicates (a method's `replicates: N`).

A calibrated method (GPTQ, AWQ) gives a different model for each draw of its calibration texts and
seed. Replicate 1 is the method itself: the first `calibration_samples` texts and the config's seed,
as every run before replicates existed. Replicate k >= 2 is named `<method>~r<k>` (a method name
cannot hold '~') and quantizes from its own draw: a seed derived from the config's seed and k, and
a sample of `calibration_samples` texts taken without replacement from the first
POOL_FACTOR x calibration_samples texts of the calibration data. Both follow from (seed, k) alone,
so a rerun makes the same draw, and the quantize record names it (seed, the texts' indices and a
hash of the texts)."""
from __future__ import annotations

import hashlib
import re

import numpy as np

SEPARATOR = "~r"
# How far past the first calibration_samples texts a replicate's sample reaches: wide enough that
# two samples of 64 share about a quarter of their texts, narrow enough that a hub dataset is not
# read whole for it.
POOL_FACTOR = 4
_NAME = re.compile(rf"^(?P<method>.+){re.escape(SEPARATOR)}(?P<k>[0-9]+)$")


def replicate_name(method: str, k: int) -> str:
    """The variant name of a method's replicate k (k = 1 is the method itself)."""
    return method if k == 1 else f"{method}{SEPARATOR}{k}"


def split_name(name: str) -> tuple[str, int]:
    """`gptq~r2` -> ('gptq', 2); a plain method name -> (name, 1)."""
    m = _NAME.match(name)
    return (m["method"], int(m["k"])) if m else (name, 1)


def draw_seed(seed: int, k: int) -> int:
    """Replicate k's seed: the config's own for k = 1, else a 31-bit number derived from (seed, k)."""
    if k == 1:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1)[0] & 0x7FFFFFFF)


def pool_size(samples: int) -> int:
    return POOL_FACTOR * samples


def draw_indices(pool: int, samples: int, seed: int, k: int) -> list[int]:
    """Indices into the pool of replicate k's texts: the first `samples` for k = 1, else a sample
    without replacement (in drawn order) from a generator seeded by (seed, k)."""
    if k == 1 or pool <= samples:
        idx = list(range(min(pool, samples)))
        if k != 1:  # a pool no larger than the sample: the same texts in another order
            idx = [int(i) for i in np.random.default_rng([int(seed), int(k)]).permutation(len(idx))]
        return idx
    rng = np.random.default_rng([int(seed), int(k)])
    return [int(i) for i in rng.choice(pool, size=samples, replace=False)]


def texts_digest(texts: list[str]) -> str:
    """A short hash of the texts in their order: two records with the same digest calibrated alike."""
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.hexdigest()[:16]


def draw(pool_texts: list[str], samples: int, seed: int, k: int) -> tuple[list[str], dict]:
    """Replicate k's calibration texts from the pool, and what the quantize record keeps of the draw."""
    idx = draw_indices(len(pool_texts), samples, seed, k)
    texts = [pool_texts[i] for i in idx]
    return texts, {"replicate": k, "seed": draw_seed(seed, k), "pool_texts": len(pool_texts),
                   "text_indices": idx, "texts_sha256": texts_digest(texts)}
