"""Many comparisons at once: a report tests every variant against the baseline, so a 95% interval read
alone finds something in about one test of twenty where nothing is there. Holm's step-down method
(Holm 1979, "A simple sequentially rejective multiple test procedure") keeps the chance of any false
finding among the family at 5% and is never less powerful than Bonferroni's.

Each test is McNemar's exact test on the items the two sides score differently (the flips): under no
difference, an item lost is as likely as an item gained, so the count lost is Binomial(lost + gained,
1/2). It pools the tasks' items; the paired interval averages the tasks, which weighs them alike only
when they hold as many items each (SmolLM2's two tasks do: 1 200 items each)."""
from __future__ import annotations

from math import comb


def mcnemar_exact_p(lost: int, gained: int) -> float:
    """Two-sided exact p-value of `lost` against `gained` discordant items (1.0 where there are none)."""
    n = int(lost) + int(gained)
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(min(int(lost), int(gained)) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def holm(pvalues: dict) -> dict:
    """Holm-adjusted p-values: the i-th smallest of m times (m - i + 1), made monotone, capped at 1; a test
    is a finding at level alpha where its adjusted p-value is below alpha."""
    order = sorted(pvalues, key=pvalues.get)
    m, running, out = len(order), 0.0, {}
    for i, name in enumerate(order):
        running = max(running, min(1.0, (m - i) * pvalues[name]))
        out[name] = running
    return out
