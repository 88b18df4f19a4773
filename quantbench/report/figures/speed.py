"""Speed and memory: decode speed for the memory a variant takes, throughput over batch sizes, and
the memory itself."""
from __future__ import annotations

import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from quantbench.report import labels, style

LINESTYLES = ["-", "--", ":", "-."]  # variants sharing a family and a bit width stay apart in one panel
SPREAD = ("Error bars span the interquartile range of the timed repeats (the throughput at the 75th and "
          "25th percentile of the latency).")


def _spread(cells: pd.DataFrame, col: str) -> tuple[pd.Series, pd.Series]:
    """Below/above errors of a throughput (work / latency) from the latency's quartiles."""
    lower = cells[col] * (1 - cells.median_s / cells.p75_s)
    upper = cells[col] * (cells.median_s / cells.p25_s - 1)
    return lower.clip(lower=0), upper.clip(lower=0)


# A figure shows one decode mode: eager generate (the comparison's) where it was run, else the
# fastest mode the config ran (a GPU reference config runs only the fast ones).
MODE_PREFERENCE = ("eager", "fused", "graphs", "compiled", "static")


def _decode_cells(bench: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Generate with the KV cache in one mode (MODE_PREFERENCE), at the longest generation measured."""
    if bench.empty:
        return bench, "eager"
    ok = bench[(bench.outcome == "ok") & (bench.scenario == "generate")]
    ok = ok[ok.use_cache == True]  # noqa: E712
    modes = set(ok["mode"].fillna("eager"))
    mode = next((m for m in MODE_PREFERENCE if m in modes), "eager")
    ok = ok[ok["mode"].fillna("eager") == mode]
    return (ok[ok.new_tokens == ok.new_tokens.max()] if len(ok) else ok), mode


def decode_vs_memory(data):
    dec, mode = _decode_cells(data.bench)
    sizes = sorted(dec.batch_size.unique()) if len(dec) else [None]
    fig, axes = style.figure(1, len(sizes))
    panels = []
    for ax, bs in zip(axes[0], sizes):
        if bs is None:
            style.empty(ax, "no generate timings in these records")
            continue
        cells = dec[dec.batch_size == bs]
        lo, hi = _spread(cells, "decode_tokens_per_s")
        points = []
        for (_, c), low, high in zip(cells.iterrows(), lo, hi):
            lk = data.look(c.variant)
            ax.errorbar(c.weights_memory_mb, c.decode_tokens_per_s, yerr=[[low], [high]], fmt=lk.marker, color=lk.color,
                        mec=lk.edge, ecolor=lk.edge, ms=7, capsize=3, zorder=3)
            points.append(labels.Point(c.weights_memory_mb, c.decode_tokens_per_s, c.variant, lk))
        style.log_scale(ax, "x")
        style.axes_text(ax, title=f"batch size {int(bs)}", xlabel="weights (MB, log scale)", ylabel="decode tokens/s")
        panels.append((ax, points))
    labels.place(fig, panels)
    n = int(dec.new_tokens.max()) if len(dec) else 0
    caption = (f"Generate throughput ({n} new tokens, KV cache on, {mode} mode; prefill included) against the "
               "memory of the weights, one panel per batch size. Marker and colour: the serving scheme's family; "
               "paler: fewer bits. " + SPREAD)
    return fig, caption


def throughput_vs_batch(data):
    ok = data.bench[data.bench.outcome == "ok"] if len(data.bench) else data.bench
    decode, mode = _decode_cells(data.bench)
    columns = [("prefill", ok[ok.scenario == "prefill"] if len(ok) else ok, "prefill_tokens_per_s"),
               ("generate", decode, "decode_tokens_per_s")]
    families = list(dict.fromkeys(data.look(v).family for v in ok.variant)) if len(ok) else []
    # a row per family keeps each panel to a few lines; a shared y per column keeps families comparable
    fig, axes = style.figure(max(len(families), 1), 2, panel=(5.0, 2.9), sharey="col", sharex=True)
    if not families:
        for ax in axes.flat:
            style.empty(ax, "no timings in these records")
    for r, family in enumerate(families):
        name = style.FAMILIES.get(family, style.FAMILIES["other"])[2]
        for c, (scenario, cells, col) in enumerate(columns):
            ax = axes[r][c]
            mine = cells[[data.look(v).family == family for v in cells.variant]] if len(cells) else cells
            for i, (variant, g) in enumerate(mine.groupby("variant", sort=False)):
                g = g.sort_values("batch_size")
                lk = data.look(variant)
                lo, hi = _spread(g, col)
                ax.errorbar(g.batch_size, g[col], yerr=[lo, hi], marker=lk.marker, color=lk.edge, mfc=lk.color,
                            ls=LINESTYLES[i % len(LINESTYLES)], capsize=3, ms=6, label=variant)
            if len(mine):
                style.plain_ticks(ax, ok.batch_size)
                ax.legend(fontsize=style.FONT["legend"], loc="best")
            style.axes_text(ax, title=f"{name}: {scenario}", xlabel="batch size" if r == len(families) - 1 else None,
                            ylabel="tokens/s")
    n = int(columns[1][1].new_tokens.max()) if len(columns[1][1]) else 0
    caption = (f"Prefill (left) and generate ({n} new tokens, KV cache on, {mode} mode) throughput (right) against "
               "batch size, one row per family so that each panel holds a few lines; each column shares its y axis. "
               + SPREAD)
    return fig, caption


def memory_per_variant(data):
    df = data.summary.sort_values("weights_memory_mb") if len(data.summary) else data.summary
    fig, axes = style.figure(1, 2, panel=(4.2, 0.3 * max(len(df), 1) + 1.6), sharey=True)
    if df.empty:
        for ax in axes[0]:
            style.empty(ax, "no benchmark records")
        return fig, "Memory per variant (no benchmark records)."
    y = list(range(len(df)))
    looks = [data.look(v) for v in df.variant]
    colors, edges = [lk.color for lk in looks], [lk.edge for lk in looks]
    # two axes, not two bars on one: weights and the process's peak can differ by orders of magnitude
    for ax, col, title in zip(axes[0], ("weights_memory_mb", "peak_memory_mb"),
                              ("Weights", "Peak while benchmarked")):
        ax.barh(y, df[col], height=0.6, color=colors, edgecolor=edges)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # five-digit MB labels collide beyond ~5 ticks
        style.axes_text(ax, title=title, xlabel="MB")
        ax.grid(axis="y", visible=False)
    axes[0][0].set_yticks(y, df.variant, fontsize=style.FONT["tick"])
    handles = [Patch(facecolor=style.FAMILIES[f][0], label=style.FAMILIES[f][2])
               for f in dict.fromkeys(lk.family for lk in looks)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize=style.FONT["legend"],
               frameon=False)
    caption = ("Memory of the weights (left) and the peak memory measured during the benchmark (right; on the CPU "
               "the process's resident set, libraries included). Colour: the family; paler: fewer bits.")
    return fig, caption
