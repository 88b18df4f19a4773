"""The one look every report figure shares: a colour and a marker per variant family, the bit width
as the shade of the family's colour, font and figure sizes. Figures take all of these from here, so a
variant looks the same in every figure."""
from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402

from quantbench import backends  # noqa: E402


def _backend_families() -> dict[str, tuple[str, str, str]]:
    """Each backend's family as its class draws it (Backend.COLOR, MARKER, LABEL)."""
    out = {}
    for name in backends.names():
        b = backends.get(name)
        out["fp" if name == backends.UNQUANTIZED else name] = (b.COLOR, b.MARKER, b.label)
    return out


# family -> (colour at full width, marker, what the legend calls it)
FAMILIES = {
    **_backend_families(),
    "lora": ("#17becf", "*", "base + LoRA adapter"),
    "merged": ("#8c564b", "h", "adapter merged"),
    "recipe": ("#d62728", "p", "merged, re-quantized"),
    "other": ("#7f7f7f", "d", "other"),
}
# what is not a variant: fronts, reference lines, grids
NEUTRAL = "#555555"
FRONT = "#d62728"
HEAT = "viridis"  # colour map of heatmaps: perceptually uniform, readable in greyscale
GRID_ALPHA = 0.3
# bit widths between these span the shades; fewer bits, paler fill
BITS_RANGE = (2, 32)
PALEST = 0.3  # share of the family colour in the fill of the fewest bits

FONT = {"title": 11, "label": 10, "tick": 9, "point": 8, "legend": 8, "note": 8}
PANEL_SIZE = (5.2, 4.0)  # inches per panel
DPI = 120


@dataclass(frozen=True)
class Look:
    color: str   # the fill: the family's colour, paler for fewer bits
    edge: str    # the family's colour at full strength: the family stays readable at any shade
    marker: str
    family: str


def shade(color: str, bits: float | None) -> str:
    if bits is None or pd.isna(bits):
        return mcolors.to_hex(color)
    lo, hi = (math.log2(b) for b in BITS_RANGE)
    share = PALEST + (1 - PALEST) * min(max((math.log2(bits) - lo) / (hi - lo), 0.0), 1.0)
    rgb = [share * c + (1 - share) for c in mcolors.to_rgb(color)]
    return mcolors.to_hex(rgb)


def look(family: str, bits: float | None) -> Look:
    color, marker, _ = FAMILIES.get(family, FAMILIES["other"])
    return Look(shade(color, bits), mcolors.to_hex(color), marker, family if family in FAMILIES else "other")


def looks(variants: pd.DataFrame) -> dict[str, Look]:
    """variant -> its look, from variants.variant_table's rows."""
    return {r.variant: look(r.family, r.bits) for r in variants.itertuples()}


def figure(nrows: int = 1, ncols: int = 1, panel: tuple[float, float] = PANEL_SIZE, **kw):
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), dpi=DPI,
                             squeeze=False, layout="constrained", **kw)
    for ax in axes.flat:
        ax.grid(alpha=GRID_ALPHA)
        ax.tick_params(labelsize=FONT["tick"])
    return fig, axes


def mosaic(layout, size: tuple[float, float], **kw):
    """A figure of named panels (plt.subplot_mosaic), styled like `figure`'s."""
    fig = plt.figure(figsize=size, dpi=DPI, layout="constrained")
    axes = fig.subplot_mosaic(layout, **kw)
    for ax in axes.values():
        ax.grid(alpha=GRID_ALPHA)
        ax.tick_params(labelsize=FONT["tick"])
    return fig, axes


def axes_text(ax, title: str | None = None, xlabel: str | None = None, ylabel: str | None = None) -> None:
    if title:
        ax.set_title(title, fontsize=FONT["title"])
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=FONT["label"])
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=FONT["label"])


def plain_ticks(ax, values, axis: str = "x") -> None:
    """Log-scaled batch sizes labelled as the numbers they are (1, 4, 16), not as powers."""
    values = sorted({int(v) for v in values})
    getattr(ax, f"set_{axis}scale")("log", base=2)
    getattr(ax, f"set_{axis}ticks")(values, [str(v) for v in values])
    getattr(ax, f"{axis}axis").set_minor_locator(matplotlib.ticker.NullLocator())


def log_scale(ax, axis: str = "x") -> None:
    """A log axis (memory spans decades between 2-bit and float models) with ticks at 1, 2, 3, 5
    times a power of ten, written as plain numbers."""
    getattr(ax, f"set_{axis}scale")("log")
    target = getattr(ax, f"{axis}axis")
    target.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 3, 5)))
    target.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_locator(matplotlib.ticker.NullLocator())


def empty(ax, why: str) -> None:
    """A panel whose question the records cannot answer says so instead of staying blank."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=FONT["note"], wrap=True, transform=ax.transAxes)


def save(fig, path) -> None:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
