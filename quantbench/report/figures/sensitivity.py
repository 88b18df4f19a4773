"""Which layers hurt: for each sensitivity method, the KL of every block x projection cell quantized
alone (a heatmap), and of every block and every projection kind with their 95% intervals (bars)."""
from __future__ import annotations

import numpy as np
from matplotlib.colors import LogNorm

from quantbench.report import style
from quantbench.report.sensitivity_tables import sensitivity_table


def _label(x) -> str:
    """A block index (a float in a column with gaps) as an integer; a projection kind without `_proj`."""
    return str(int(x)) if isinstance(x, float) else str(x).removesuffix("_proj")


def _bars(ax, rows, label_col: str, title: str, look) -> None:
    labels = [_label(x) for x in rows[label_col]]
    ax.bar(range(len(rows)), rows.kl_mean, yerr=rows.kl_mean_ci95, color=look.color, edgecolor=look.edge,
           linewidth=0.5, capsize=2, error_kw={"ecolor": style.NEUTRAL})
    ax.set_xticks(range(len(rows)), labels, rotation=90 if len(rows) > 12 else 0, fontsize=style.FONT["tick"])
    ax.set_ylim(bottom=0)
    style.axes_text(ax, title, None, "KL vs baseline (nats/token)")


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
        for ax, family, col, what in ((row[1], "block", "block", "one block"),
                                      (row[2], "projection", "kind", "one projection kind")):
            rows = d[d.family == family]
            if len(rows):
                _bars(ax, rows, col, f"{method}: {what} quantized", data.look(method))
            else:
                style.empty(ax, f"{family} groups not measured")
    caption = ("Which layers hurt: KL against the baseline with one group of a method's quantized layers in "
               "the otherwise full-precision baseline (heatmap: one block x projection cell; bars: a whole block, "
               "one projection kind across blocks; error bars: 95% intervals over held-out windows).")
    return fig, caption
