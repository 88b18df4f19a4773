"""Which layers hurt: for each sensitivity method, the KL of every block x projection cell quantized
alone (a heatmap), and of every block and every projection kind with their 95% intervals (bars)."""
from __future__ import annotations

import matplotlib.ticker
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from quantbench.report import style
from quantbench.report.sensitivity_tables import sensitivity_table


def _label(x) -> str:
    """A block index (a float in a column with gaps) as an integer; a projection kind without `_proj`."""
    return str(int(x)) if isinstance(x, float) else str(x).removesuffix("_proj")


PLAIN = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.2g}")  # no "1e-5" offset over the title


def _bars(ax, rows, label_col: str, title: str, look, whole: tuple[float, float | None, float] | None) -> None:
    """Each group's KL with its 95% interval, the whole model's (all groups quantized at once, hatched)
    first, and on a second axis each one's KL per million of its weights: a part's share of the damage
    beside the damage it does for its size."""
    labels = [_label(x) for x in rows[label_col]]
    kl, ci, per = list(rows.kl_mean), list(rows.kl_mean_ci95), list(rows.kl_per_million_weights)
    first = 0
    if whole is not None:
        labels, kl, ci, per, first = ["whole\nmodel", *labels], [whole[0], *kl], [whole[1], *ci], [whole[2], *per], 1
    x = range(len(labels))
    bars = ax.bar(x, kl, yerr=[0 if c is None or c != c else c for c in ci], color=look.color, edgecolor=look.edge,
                  linewidth=0.5, capsize=2, error_kw={"ecolor": style.NEUTRAL})
    if first:
        bars[0].set_hatch("//")
        bars[0].set_facecolor("none")
    ax.set_xticks(x, labels, rotation=90 if len(labels) > 12 else 0, fontsize=style.FONT["tick"])
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(PLAIN)
    style.axes_text(ax, title, None, "KL vs baseline (nats/token)")
    right = ax.twinx()
    right.plot(x, per, ls="", marker="o", ms=4, color=style.NEUTRAL, zorder=5)
    right.set_ylim(bottom=0, top=max(p for p in per if p == p) * 1.15)
    right.yaxis.set_major_formatter(PLAIN)
    right.tick_params(labelsize=style.FONT["tick"])
    right.set_ylabel("KL per million weights (dots)", fontsize=style.FONT["label"])


def _heatmap(fig, ax, cells, title: str) -> None:
    blocks = sorted(int(b) for b in cells.block.unique())
    kinds = list(dict.fromkeys(cells.kind))
    grid = np.full((len(kinds), len(blocks)), np.nan)
    for r in cells.itertuples():
        grid[kinds.index(r.kind), blocks.index(int(r.block))] = r.kl_mean
    # log colours: one cell often dominates, and a linear scale would leave the rest one colour
    positive = grid[np.isfinite(grid) & (grid > 0)]
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size else None
    im = ax.imshow(grid, aspect="auto", cmap=style.HEAT, interpolation="nearest", norm=norm)
    ax.set_yticks(range(len(kinds)), [_label(k) for k in kinds], fontsize=style.FONT["tick"])
    step = max(1, len(blocks) // 15)
    ax.set_xticks(range(0, len(blocks), step), [str(b) for b in blocks[::step]], fontsize=style.FONT["tick"])
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="KL (nats/token, log scale)")
    style.axes_text(ax, title, "decoder block", None)


def _whole_model(data, method: str, d) -> tuple[float, float | None, float] | None:
    """The method's whole-model KL (its evaluate record), its 95% half-width and its KL per million of
    the weights the groups cover, or None where the method was not evaluated."""
    q = data.quality
    if q.empty or "kl_mean" not in q or method not in set(q.variant):
        return None
    row = q[q.variant == method].iloc[0]
    if row.kl_mean != row.kl_mean:
        return None
    blocks = d[d.family == "block"]
    weights = blocks.weights.sum() if len(blocks) else d[d.family == "projection"].weights.sum()
    ci = row.kl_mean_ci95 if "kl_mean_ci95" in q and row.kl_mean_ci95 == row.kl_mean_ci95 else None
    return float(row.kl_mean), ci, float(row.kl_mean) / weights * 1e6 if weights else float("nan")


def sensitivity(data):
    df = sensitivity_table(data.records)
    methods = list(dict.fromkeys(df.method)) if not df.empty else []
    fig, axes = style.figure(max(1, len(methods)), 3, panel=(5.2, 3.4))
    if not methods:
        for ax in axes.flat:
            style.empty(ax, "no sensitivity records")
        return fig, "Which layers hurt: no sensitivity records."
    for row, method in zip(axes, methods):
        d = df[df.method == method]
        cells = d[d.family == "cell"]
        if len(cells):
            _heatmap(fig, row[0], cells, f"{method}: one cell quantized")
        else:
            style.empty(row[0], "cells not measured (sensitivity.groups)")
        whole = _whole_model(data, method, d)
        for ax, family, col, what in ((row[1], "block", "block", "one block"),
                                      (row[2], "projection", "kind", "one projection kind")):
            rows = d[d.family == family]
            if len(rows):
                _bars(ax, rows, col, f"{method}: {what} quantized", data.look(method), whole)
            else:
                style.empty(ax, f"{family} groups not measured")
    fig.legend(handles=[Patch(facecolor="none", edgecolor=style.NEUTRAL, hatch="//",
                              label="whole model: every group quantized (the method's own KL)"),
                        Line2D([], [], ls="", marker="o", ms=4, color=style.NEUTRAL,
                               label="KL per million weights of the group (right axis)")],
               loc="outside lower center", ncols=2, fontsize=style.FONT["legend"], frameon=False)
    caption = ("Which layers hurt: KL against the baseline with one group of a method's quantized layers in "
               "the otherwise full-precision baseline (heatmap: one block x projection cell; bars: a whole block, "
               "one projection kind across blocks, beside the whole model quantized by the method, hatched; error "
               "bars: 95% intervals over held-out windows). Dots, on the right axis: KL per million weights of "
               "the group, so that a small part that hurts much stands out beside a large part that hurts as "
               "much in total.")
    return fig, caption
