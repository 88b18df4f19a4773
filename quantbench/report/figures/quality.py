"""Quality against memory: what each quantization scheme keeps of the model for the memory it takes."""
from __future__ import annotations

import math

import pandas as pd
from matplotlib.lines import Line2D

from quantbench.report import labels, paired, pareto, replicates, style


def _points(data) -> pd.DataFrame:
    """Quantization schemes only: a fine-tuned variant's KL is against its trained adapter, and it
    answers the recipe's question (recipe_kl)."""
    s = data.summary
    if s.empty or data.quality.empty:
        return pd.DataFrame()
    s = s[~s.finetuned] if "finetuned" in s else s
    q = data.quality.set_index("variant")
    df = s[["variant", "weights_memory_mb"]].copy()
    for col in ("delta_average_points", "delta_noise_points", "delta_noise_kind", "delta_ci95_low",
                "delta_ci95_high", "kl_mean", "kl_mean_ci95", "delta_runs_mean_points", "kl_mean_ci95_runs"):
        df[col] = df.variant.map(q[col]) if col in q else None
    # a method with calibration replicates is drawn at its runs' mean Δ, with the run-inclusive interval
    # (its KL with the half-width that holds its runs' spread), and the fronts step by those
    runs = df.delta_runs_mean_points.notna()
    df.loc[runs, "delta_average_points"] = df.loc[runs, "delta_runs_mean_points"]
    wide = df.kl_mean_ci95_runs.notna()
    df.loc[wide, "kl_mean_ci95"] = df.loc[wide, "kl_mean_ci95_runs"]
    return df


def _symlog_floor(values: pd.Series) -> float:
    """KL of the reference itself is 0: a symmetric log axis, linear below the smallest measured KL."""
    positive = values[values > 0]
    return 10 ** math.floor(math.log10(positive.min())) if len(positive) else 1.0


def _delta_bar(r) -> tuple[float, float] | None:
    """The task panel's error bar: the 95% interval of the variant's difference to the baseline that
    the quality table reads (paired over the same items where both have per-item results), as
    distances below and above the point."""
    if r.delta_noise_kind in ("paired", replicates.KIND) and pd.notna(r.delta_ci95_low):
        return r.delta_average_points - r.delta_ci95_low, r.delta_ci95_high - r.delta_average_points
    if pd.notna(r.delta_noise_points):
        return r.delta_noise_points, r.delta_noise_points
    return None


def _task_beats(data):
    """A larger variant joins the task front only where the paired interval of its difference to the
    last front point lies above zero; pairs without per-item results fall back to the half-widths."""
    tasks = sorted({t for items in data.items.values() for t in items["tasks"]})
    runs = replicates.runs_of(data.items)

    def beats(row, last):
        a, b = data.items.get(row.variant), data.items.get(last.variant)
        if a is None or b is None or row.variant in runs or last.variant in runs:
            return None  # a method with replicates steps by its run-inclusive interval (the half-widths)
        res = paired.compare_items(a, b, tasks)
        return None if res is None else res["low"] > 0

    return beats


def _draw_front(ax, rows: pd.DataFrame, front: pd.DataFrame, col: str) -> bool:
    """The front's steps, only where it has any: a single point is no front (nothing larger is
    measurably better than the smallest model, which does not make the smallest the best)."""
    if len(front) < 2:
        return False
    # the last step runs on to the largest model: nothing beyond it is measurably better
    xs = list(front.weights_memory_mb) + [rows.weights_memory_mb.max()]
    ys = list(front[col]) + [front[col].iloc[-1]]
    ax.step(xs, ys, where="post", color=style.FRONT, lw=1.2, zorder=2)
    return True


def _task_panel(ax, data, df: pd.DataFrame, baseline: str):
    rows = df.dropna(subset=["delta_average_points", "weights_memory_mb"]) if len(df) else df
    if rows.empty:
        style.empty(ax, "no task average in these records")
        return [], None
    points = []
    for r in rows.sort_values(["weights_memory_mb", "delta_average_points"]).itertuples():
        lk = data.look(r.variant)
        bar = None if r.variant == baseline else _delta_bar(r)
        ax.errorbar(r.weights_memory_mb, r.delta_average_points, yerr=None if bar is None else [[bar[0]], [bar[1]]],
                    fmt=lk.marker, color=lk.color, mec=lk.edge, ecolor=lk.edge, ms=7, capsize=3, zorder=3)
        points.append(labels.Point(r.weights_memory_mb, r.delta_average_points, r.variant, lk))
    ax.axhline(0, color=style.NEUTRAL, lw=0.8, ls="--", zorder=1)
    kinds = set(rows.delta_noise_kind.dropna())
    front = pareto.pareto_front(rows.assign(hw=rows.delta_noise_points.fillna(0)), "weights_memory_mb",
                                "delta_average_points", True, "hw", beats=_task_beats(data))
    drawn = _draw_front(ax, rows, front, "delta_average_points")
    style.log_scale(ax, "x")
    style.axes_text(ax, title=f"Task average against weight memory, as the difference to {baseline}",
                    xlabel="weights (MB, log scale)", ylabel=f"Δ task average vs {baseline} (points)")
    how = ("paired 95% interval of the difference over the same items" if kinds == {"paired"} else
           "95% interval of the difference (paired over the same items where both have per-item results, "
           "else of two independent means)" if kinds else "no interval recorded")
    note = (f"task panel: each point is its task average minus {baseline}'s (dashed line), its error bar the "
            f"{how}, the interval the quality table reads; a bar that does not reach the line is a finding")
    with_runs = sorted(rows.variant[rows.delta_noise_kind == replicates.KIND])
    if with_runs:
        note += (f"; {', '.join(with_runs)}: the mean of the method's calibration replicates, its bar the "
                 "run-inclusive interval (runs and items resampled together), which the front steps by")
    return points, (note, drawn)


def _kl_panel(ax, data, df: pd.DataFrame):
    rows = df.dropna(subset=["kl_mean", "weights_memory_mb"]) if len(df) else df
    if rows.empty:
        style.empty(ax, "no KL to the reference in these records")
        return [], None
    has_noise = rows.kl_mean_ci95.notna().all()
    points = []
    for r in rows.sort_values(["weights_memory_mb", "kl_mean"]).itertuples():
        lk = data.look(r.variant)
        err = r.kl_mean_ci95
        # an interval of a non-negative quantity stops at zero
        yerr = None if pd.isna(err) else [[min(err, r.kl_mean)], [err]]
        ax.errorbar(r.weights_memory_mb, r.kl_mean, yerr=yerr, fmt=lk.marker, color=lk.color, mec=lk.edge,
                    ecolor=lk.edge, ms=7, capsize=3, zorder=3)
        points.append(labels.Point(r.weights_memory_mb, r.kl_mean, r.variant, lk))
    front = pareto.pareto_front(rows, "weights_memory_mb", "kl_mean", False, "kl_mean_ci95" if has_noise else None)
    drawn = _draw_front(ax, rows, front, "kl_mean")
    ax.set_yscale("symlog", linthresh=_symlog_floor(rows.kl_mean))
    style.log_scale(ax, "x")
    style.axes_text(ax, title="KL to the reference against weight memory", xlabel="weights (MB, log scale)",
                    ylabel="KL to the reference (nats/token)")
    note = ("KL panel: error bars are 95% intervals over the held-out windows" + (
        " (for a method with calibration replicates, widened by its runs' spread: 1.96 sd in quadrature)"
        if rows.kl_mean_ci95_runs.notna().any() else "") if has_noise else
            "KL panel: no interval recorded, so no error bars and a front without a noise test")
    return points, (note, drawn)


def quality_vs_memory(data):
    df = _points(data)
    baseline = data.params["baseline"]
    # taller than the default panel: the 4-bit schemes crowd one band of memory, and their names go
    # beside them rather than into a numbered key
    fig, axes = style.figure(1, 2, panel=(6.4, 5.2))
    panels, notes, without_front = [], [], []
    draws = {"task": lambda a: _task_panel(a, data, df, baseline), "KL": lambda a: _kl_panel(a, data, df)}
    for ax, (name, draw) in zip(axes[0], draws.items()):
        points, said = draw(ax)
        if said:
            notes.append(said[0])
            if not said[1]:
                without_front.append(name)
            panels.append((ax, points))
    # the legend sits under the panels, where it covers no point and no error bar
    handles = [Line2D([], [], color=style.NEUTRAL, lw=0.8, ls="--", label=f"{baseline} (the baseline)")]
    if len(without_front) < len(panels):
        handles.append(Line2D([], [], color=style.FRONT, lw=1.2, label="Pareto front (steps beyond the noise)"))
    if without_front:
        # said where the front would be looked for, not left for the reader to infer from its absence
        handles.append(Line2D([], [], ls="", label=f"{' and '.join(without_front)} panel: no Pareto front, as no "
                                                   "larger scheme beats a smaller one beyond the noise"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=style.FONT["legend"],
               frameon=False)
    labels.place(fig, panels)
    caption = ("Each quantization scheme's quality against the memory its weights take (fine-tuned variants are in "
               "the recipe figure). Marker and colour: the scheme's family; paler: fewer bits. "
               + "; ".join(notes) + ". " + pareto.HOW
               + " In the task panel two schemes are compared by the paired interval of their difference over the "
                 "same items where both have per-item results. A panel with no step beyond the noise draws no front.")
    return fig, caption
