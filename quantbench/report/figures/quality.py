"""Quality against memory: what each quantization scheme keeps of the model for the memory it takes."""
from __future__ import annotations

import math

import pandas as pd

from quantbench.report import labels, pareto, style

PANELS = [  # column, its 95% half-width column (made from a standard error where needed), axis label, higher is better
    ("Average", "Average_hw95", "task average (points)", True),
    ("kl_mean", "kl_mean_ci95", "KL to the reference (nats/token)", False),
]


def _points(data) -> pd.DataFrame:
    """Quantization schemes only: a fine-tuned variant's KL is against its trained adapter, and it
    answers the recipe's question (recipe_kl)."""
    s = data.summary
    if s.empty or data.quality.empty:
        return pd.DataFrame()
    s = s[~s.finetuned] if "finetuned" in s else s
    q = data.quality.set_index("variant")
    df = s[["variant", "weights_memory_mb"]].copy()
    for col in ("Average", "Average_se", "kl_mean", "kl_mean_ci95"):
        df[col] = df.variant.map(q[col]) if col in q else None
    df["Average_hw95"] = pareto.Z95 * pd.to_numeric(df["Average_se"], errors="coerce")
    return df


def _symlog_floor(values: pd.Series) -> float:
    """KL of the reference itself is 0: a symmetric log axis, linear below the smallest measured KL."""
    positive = values[values > 0]
    return 10 ** math.floor(math.log10(positive.min())) if len(positive) else 1.0


def quality_vs_memory(data):
    df = _points(data)
    fig, axes = style.figure(1, len(PANELS))
    panels, noted = [], []
    for ax, (col, hw, ylabel, higher) in zip(axes[0], PANELS):
        rows = df.dropna(subset=[col, "weights_memory_mb"]) if len(df) and col in df else pd.DataFrame()
        if rows.empty:
            style.empty(ax, f"no {ylabel} in these records")
            continue
        has_noise = rows[hw].notna().all()
        noted.append(f"{ylabel}: " + ("error bars are 95% intervals" if has_noise else
                                      "no interval recorded, so no error bars and a front without a noise test"))
        points = []
        for r in rows.sort_values(["weights_memory_mb", col]).itertuples():
            lk = data.look(r.variant)
            err = getattr(r, hw)
            value = getattr(r, col)
            # an interval of a non-negative quantity (KL) stops at zero
            lower = min(err, value) if pd.notna(err) and not higher else err
            ax.errorbar(r.weights_memory_mb, value, yerr=None if pd.isna(err) else [[lower], [err]],
                        fmt=lk.marker, color=lk.color, mec=lk.edge, ecolor=lk.edge, ms=7, capsize=3, zorder=3)
            points.append(labels.Point(r.weights_memory_mb, value, r.variant, lk))
        front = pareto.pareto_front(rows, "weights_memory_mb", col, higher, hw if has_noise else None)
        # the last step runs on to the largest model: nothing beyond it is measurably better
        xs = list(front.weights_memory_mb) + [rows.weights_memory_mb.max()]
        ys = list(front[col]) + [front[col].iloc[-1]]
        ax.step(xs, ys, where="post", color=style.FRONT, lw=1.2, zorder=2,
                label="Pareto front (steps beyond the noise)")
        ax.legend(fontsize=style.FONT["legend"], loc="lower right" if higher else "upper right")
        if not higher:
            ax.set_yscale("symlog", linthresh=_symlog_floor(rows[col]))
        style.log_scale(ax, "x")
        style.axes_text(ax, title=ylabel[0].upper() + ylabel.split(" (")[0][1:] + " against weight memory",
                        xlabel="weights (MB, log scale)", ylabel=ylabel)
        panels.append((ax, points))
    labels.place(fig, panels)
    caption = ("Each quantization scheme's quality against the memory its weights take (fine-tuned variants are in "
               "the recipe figure). Marker and colour: the scheme's family; paler: fewer bits. "
               + "; ".join(noted) + ". " + pareto.HOW)
    return fig, caption
