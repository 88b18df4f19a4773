"""Comparative words from figures with their noise, so that no sentence of a report or of the README
says more than its intervals allow.

`compare` reads two figures, each with its 95% interval: where the intervals overlap (or, when a
paired interval of the difference is given, where that interval holds zero) the reading is
"same within noise"; otherwise it names the side that is beyond the other's noise. Non-overlap of two
95% intervals is a conservative test (two intervals may overlap a little while the difference is
still significant): a reading of "same within noise" is "no finding", not "equal". A paired interval
of the difference, where there is one, is the sharper test and takes precedence.

`speed_reading` reads two timed benchmark cells: a cell whose spread stayed above the benchmark's
limit (tables.noisy_mask) gives no reading at all.
"""
from __future__ import annotations

from dataclasses import dataclass

SAME = "same within noise"
# a paired interval with one end on zero holds zero, but only just: said so, not read as a plain tie
AT_EDGE = SAME + ", at its edge: the 95% interval of the difference ends at zero"
NOT_READ = "not read: spread above the limit"


EDGE_TOL = 1e-9  # an interval end this close to zero is on it (bootstrap percentiles of 0/1 items hit 0 exactly)


def is_same(reading: str) -> bool:
    """Whether a reading is 'same within noise', at the interval's edge or not."""
    return reading.startswith(SAME)


@dataclass(frozen=True)
class Figure:
    """A figure and its 95% interval [low, high]."""
    value: float
    low: float
    high: float

    def __post_init__(self):
        for k in ("value", "low", "high"):
            object.__setattr__(self, k, float(getattr(self, k)))
        if not self.low <= self.value <= self.high:
            raise ValueError(f"interval {self.low}–{self.high} does not hold its value {self.value}")

    @classmethod
    def pm(cls, value: float, half_width: float) -> Figure:
        """value ± half_width."""
        return cls(value, value - abs(half_width), value + abs(half_width))

    @classmethod
    def of(cls, x) -> Figure:
        """A Figure from a Figure, (value, half_width) or (value, low, high)."""
        if isinstance(x, Figure):
            return x
        if len(x) == 2:
            return cls.pm(*x)
        return cls(*x)


def overlap(a: Figure, b: Figure) -> bool:
    return a.low <= b.high and b.low <= a.high


def compare(a, b, smaller_is_better: bool, names: tuple[str, str] = ("A", "B"),
            paired: tuple[float, float] | None = None) -> str:
    """The comparative words for figure `a` against figure `b`.

    a, b: Figure, (value, half_width) or (value, low, high), each with its 95% interval.
    paired: the 95% interval (low, high) of the paired difference a - b, where one exists (the same
    items scored by both); it then decides instead of the overlap of the two intervals.
    Returns "same within noise", or "<name of a> smaller (better), beyond noise" and the like.
    """
    a, b = Figure.of(a), Figure.of(b)
    if paired is not None:
        low, high = paired
        if low <= 0 <= high:
            return AT_EDGE if (abs(low) < EDGE_TOL) != (abs(high) < EDGE_TOL) else SAME
        smaller = high < 0
    else:
        if overlap(a, b):
            return SAME
        smaller = a.high < b.low
    better = smaller == smaller_is_better
    return f"{names[0]} {'smaller' if smaller else 'larger'} ({'better' if better else 'worse'}), beyond noise"


def delta_reading(delta: float, half_width: float, higher_is_better: bool = True, name: str = "variant") -> str:
    """The reading of a difference to a baseline given with its own 95% half-width (the quality table's
    Δ Average): inside it, no finding."""
    return compare(Figure.pm(delta, half_width), Figure(0.0, 0.0, 0.0), smaller_is_better=not higher_is_better,
                   names=(name, "baseline"), paired=(delta - abs(half_width), delta + abs(half_width)))


@dataclass(frozen=True)
class SpeedCell:
    """One timed benchmark figure: its median, its spread (IQR/median), whether that spread stayed
    above the benchmark's limit, and the floor of its noise (the spread between separate jobs of one
    computation, tables.job_spread)."""
    value: float
    spread: float
    above_limit: bool
    floor: float = 0.0

    def band(self) -> Figure:
        # the median ± the larger of its own spread and the floor (there is no 95% interval of a median of 5)
        noise = max(self.spread, self.floor)
        return Figure(self.value, self.value * (1 - noise), self.value * (1 + noise))


def speed_reading(a: SpeedCell, b: SpeedCell, smaller_is_better: bool, names: tuple[str, str] = ("A", "B")) -> str:
    """Speed may only be read from cells within the spread limit: a flagged cell is not read."""
    if a.above_limit or b.above_limit:
        return NOT_READ
    return compare(a.band(), b.band(), smaller_is_better, names)
