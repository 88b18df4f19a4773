"""Speed and memory: decode speed for the memory a variant takes, throughput over batch sizes, and
the memory itself."""
from __future__ import annotations

import math
import textwrap

import matplotlib.ticker
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from quantbench.report import labels, pareto, style, tables

SPREAD = ("Error bars span the interquartile range of the timed repeats (the throughput at the 75th and "
          "25th percentile of the latency).")


def _spread(cells: pd.DataFrame, col: str) -> tuple[pd.Series, pd.Series]:
    """Below/above errors of a throughput (work / latency) from the latency's quartiles."""
    lower = cells[col] * (1 - cells.median_s / cells.p75_s)
    upper = cells[col] * (cells.median_s / cells.p25_s - 1)
    return lower.clip(lower=0), upper.clip(lower=0)


# A figure shows one decode mode: eager generate (the comparison's) where it was run, else the
# fastest mode the config ran (a GPU reference config runs only the fast ones).
HEAD_HATCH = "////"  # the embedding table and output head's share of a weights bar
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


HOLLOW = "Hollow markers: cells whose spread stayed above the benchmark's limit (report: noisy cells)."
BATCH_MARKERS = ["o", "s", "^", "D", "v", "P"]  # batch sizes, smallest first, in the throughput figure


def _with_noise(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells with `noisy` (spread above the limit, tables.noisy_mask)."""
    return cells.assign(noisy=tables.noisy_mask(cells) if len(cells) else pd.Series(dtype=bool))


def _family_legend(fig, looks: list[style.Look], extra: list = ()) -> None:
    """One legend under the figure (beside it, it widened a wide figure further): a marker per family
    drawn, then `extra` (fronts, hollow)."""
    handles = [Line2D([], [], ls="", marker=style.FAMILIES[f][1], color=style.FAMILIES[f][0],
                      mec=style.FAMILIES[f][0], ms=7, label=style.FAMILIES[f][2])
               for f in dict.fromkeys(lk.family for lk in looks)]
    handles += [h for h in extra]
    fig.legend(handles=handles, loc="outside lower center", fontsize=style.FONT["legend"], frameon=False,
               handletextpad=0.4, ncols=min(len(handles), 5))


def missing_here(bench: pd.DataFrame, scenario: str, batch_size: int, shown, look) -> list[str]:
    """Why a family, or some of its variants, has no point in a panel: the benchmark's own outcome
    for its cells of that scenario and batch size (unsupported, out of memory, ...), one line per
    family and reason, e.g. "GGUF (6 variants): unsupported: llama-cpp-python's Llama decodes one
    sequence at a time"."""
    if bench.empty:
        return []
    cells = bench[(bench.scenario == scenario) & (bench.batch_size == batch_size) & (bench.outcome != "ok")
                  & ~bench.variant.isin(set(shown))]
    lines = {}
    for v, g in cells.groupby("variant", sort=False):
        c = g.iloc[0]
        error = c.error if isinstance(c.error, str) else ""
        # the record's first words say why; the whole message is in benchmark.csv
        error = error if len(error) <= WHY_CHARS else error[:WHY_CHARS].rsplit(" ", 1)[0] + " …"
        why = f"{c.outcome}" + (f": {error}" if error else "")
        lines.setdefault((look(v).family, why), []).append(v)
    out = []
    for (family, why), vs in lines.items():
        name = style.FAMILIES.get(family, style.FAMILIES["other"])[2]
        out.append(f"{name} ({len(vs)} variant{'s' if len(vs) > 1 else ''}): {why}" if len(vs) > 1
                   else f"{vs[0]}: {why}")
    return out


WHY_CHARS = 90  # of a benchmark error quoted in a figure


def say_missing(ax, lines: list[str], what: str) -> None:
    """The reason a family is absent, printed under the panel's axis label, where no point can hide it."""
    if lines:
        text = "\n".join(textwrap.fill(f"not {what}: " + line, 70) for line in lines)
        ax.set_xlabel(ax.get_xlabel() + "\n" + text, fontsize=style.FONT["note"])


def _hollow_handle(marker: str = "o") -> Line2D:
    return Line2D([], [], ls="", marker=marker, mfc="none", mec=style.NEUTRAL, ms=7,
                  label="hollow: spread above\nthe limit (noisy)")


ZOOM_SHARE = 0.3   # a crowd: points slower than this share of the panel's fastest ...
ZOOM_SPAN = 1.6    # ... within this factor of their median memory ...
ZOOM_MIN = 6       # ... at least this many of them get a zoomed panel of their own
ZOOM_WIDTH = 1.6   # that panel's width, in main panels: room to name every point of the crowd


def _decode_points(ax, data, cells: pd.DataFrame) -> dict[str, labels.Point]:
    """Each cell's marker (hollow where noisy) with its interquartile error bar; variant -> its point."""
    lo, hi = _spread(cells, "decode_tokens_per_s")
    points = {}
    for (_, c), low, high in zip(cells.iterrows(), lo, hi):
        lk = data.look(c.variant)
        ax.errorbar(c.weights_memory_mb, c.decode_tokens_per_s, yerr=[[low], [high]], fmt=lk.marker,
                    color=lk.color, mfc="none" if c.noisy else lk.color, mec=lk.edge, ecolor=lk.edge, ms=7,
                    capsize=3, zorder=3)
        points[c.variant] = labels.Point(c.weights_memory_mb, c.decode_tokens_per_s, c.variant, lk)
    return points


def _crowd(cells: pd.DataFrame) -> pd.DataFrame:
    """The slow points piled near their median memory, where there are enough of them to need a zoom."""
    slow = cells[cells.decode_tokens_per_s <= ZOOM_SHARE * cells.decode_tokens_per_s.max()]
    if len(slow) < ZOOM_MIN:
        return slow.iloc[:0]
    mid = slow.weights_memory_mb.median()
    near = slow[(slow.weights_memory_mb >= mid / ZOOM_SPAN) & (slow.weights_memory_mb <= mid * ZOOM_SPAN)]
    return near if len(near) >= ZOOM_MIN else slow.iloc[:0]


def _together(points: list[labels.Point], x_span: float, y_span: float) -> list[labels.Point]:
    """Points that coincide on the panel (within 2% of its log-x and 3% of its y span) share one label
    naming each of them, one per line."""
    groups: list[list[labels.Point]] = []
    for p in points:
        for g in groups:
            if abs(math.log(p.x / g[0].x)) < 0.02 * math.log(x_span) and abs(p.y - g[0].y) < 0.03 * y_span:
                g.append(p)
                break
        else:
            groups.append([p])
    return [labels.Point(g[0].x, g[0].y, "\n".join(q.name for q in g), g[0].look) for g in groups]


def decode_vs_memory(data):
    dec, mode = _decode_cells(data.bench)
    dec = _with_noise(dec)
    sizes = sorted(dec.batch_size.unique()) if len(dec) else [None]
    crowds = {bs: _crowd(dec[dec.batch_size == bs]) for bs in sizes if bs is not None}
    zooms = [bs for bs in sizes if bs is not None and len(crowds[bs])]
    # a zoomed crowd goes under its batch size's panel: a row of four panels made a figure too wide to read
    fig, axes = style.figure(2 if zooms else 1, len(sizes), panel=(5.6, 4.4))
    for ax, bs in zip(axes[-1], sizes):
        if zooms and bs not in zooms:
            ax.set_axis_off()
    panels, drawn, zoomed, missed = [], [], [], []
    for ax, bs in zip(axes[0], sizes):
        if bs is None:
            style.empty(ax, "no generate timings in these records")
            continue
        cells = dec[dec.batch_size == bs].copy()
        lo, hi = _spread(cells, "decode_tokens_per_s")
        cells["hw"] = (lo + hi) / 2
        points = _decode_points(ax, data, cells)
        drawn += [p.look for p in points.values()]
        front = pareto.pareto_front(cells, "weights_memory_mb", "decode_tokens_per_s", True, "hw")
        xs = list(front.weights_memory_mb) + [cells.weights_memory_mb.max()]
        ys = list(front.decode_tokens_per_s) + [front.decode_tokens_per_s.iloc[-1]]
        ax.step(xs, ys, where="post", color=style.FRONT, lw=1.2, zorder=2)
        style.log_scale(ax, "x")
        # room for a name beside the smallest and the largest model
        ax.set_xlim(cells.weights_memory_mb.min() / 2.4, cells.weights_memory_mb.max() * 1.4)
        ax.set_ylim(0, (cells.decode_tokens_per_s + hi).max() * 1.12)  # ratios of speed are read: from zero
        style.axes_text(ax, title=f"batch size {int(bs)}", xlabel="weights (MB, log scale)",
                        ylabel="decode tokens/s")
        say_missing(ax, missing_here(data.bench[data.bench["mode"].fillna("eager") == mode], "generate", bs,
                                     cells.variant, data.look), "in this panel")
        chosen = [points[v] for v in front.variant]
        panels.append((ax, chosen, [p for v, p in points.items() if v not in set(front.variant)]))
    for ax, bs in ((axes[-1][sizes.index(bs)], bs) for bs in zooms):
        # the crowd again, on its own axes: every point of it named
        crowd = crowds[bs]
        lo, hi = _spread(crowd, "decode_tokens_per_s")
        x0, x1 = crowd.weights_memory_mb.min() / 1.25, crowd.weights_memory_mb.max() * 1.25
        y1 = (crowd.decode_tokens_per_s + hi).max() * 1.5  # headroom for the names of points that coincide
        cells = dec[dec.batch_size == bs]
        # every point inside the window, the crowd's faster neighbours included
        points = _decode_points(ax, data, cells[cells.weights_memory_mb.between(x0, x1)
                                                & (cells.decode_tokens_per_s <= y1)])
        style.log_scale(ax, "x")
        ax.set_xlim(x0, x1)
        ax.set_ylim(0, y1)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        style.axes_text(ax, title=f"batch size {int(bs)}: the slow crowd, zoomed (dotted box above)",
                        xlabel="weights (MB, log scale)", ylabel="decode tokens/s")
        main = axes[0][sizes.index(bs)]
        main.add_patch(Rectangle((x0, 0), x1 - x0, y1, fill=False, ec=style.NEUTRAL, ls=":", lw=1, zorder=1))
        zoomed.append((ax, _together(list(points.values()), x1 / x0, y1), []))
    extra = [Line2D([], [], color=style.FRONT, lw=1.2, label="fastest for its memory\n(front, named)")]
    if len(dec) and dec.noisy.any():
        extra.append(_hollow_handle())
    if zooms:
        extra.append(Patch(fill=False, ec=style.NEUTRAL, ls=":", label="zoomed below"))
    if drawn:
        _family_legend(fig, drawn, extra)
    labels.name(fig, panels)
    # a zoomed crowd's names, those of coinciding points stacked, may need long leader lines
    missed = labels.name(fig, zoomed, far=(*labels.FAR_RADII_PT, 110, 140, 180))
    at = {p.name: (p.x, p.y) for _, points, _ in zoomed for p in points}
    # a sparse figure names the rest as well; where even one finds no place, none of them (a partly
    # named crowd reads as if the unnamed were missing)
    before = {id(t) for ax in fig.axes for t in ax.texts}
    if labels.name(fig, [(ax, others, chosen) for ax, chosen, others in panels]):
        for ax in fig.axes:
            for t in [t for t in ax.texts if id(t) not in before and t.get_gid() == "point-label"]:
                t.remove()
    n = int(dec.new_tokens.max()) if len(dec) else 0
    caption = (f"Generate throughput ({n} new tokens, KV cache on, {mode} mode; prefill included) against the "
               "memory of the weights, one panel per batch size, from zero. The red steps join the variants that "
               "are faster than every smaller one by more than the two interquartile half-widths added in "
               "quadrature; those are named, and the rest too where every one finds a free place; otherwise the "
               "rest are marked by family only (marker and colour; paler: fewer bits; the tables name them). "
               + SPREAD + " " + HOLLOW
               + (" The dotted box is drawn again below, every point in it named (points that coincide "
                  "share a label)" + (", except where no free place was left: " + "; ".join(
                      f"{m.replace(chr(10), ', ')} (at {at[m][0]:.3g} MB, {at[m][1]:.3g} tokens/s)" for m in missed)
                      if missed else "") + "." if zooms else ""))
    return fig, caption


def _family_order(variants, look) -> list[str]:
    """Variants grouped by family (families in the order they first appear), the order kept within."""
    variants = list(dict.fromkeys(variants))
    families = list(dict.fromkeys(look(v).family for v in variants))
    return [v for f in families for v in variants if look(v).family == f]


def _where(by_scenario: dict[str, list[int]]) -> str:
    """'prefill and generate at batch size 4', 'generate at batch sizes 1, 4 and 16', ..."""
    parts = {}
    for scenario, sizes in by_scenario.items():
        sizes = sorted(sizes)
        said = (f"batch size {sizes[0]}" if len(sizes) == 1 else
                "batch sizes " + ", ".join(map(str, sizes[:-1])) + f" and {sizes[-1]}")
        parts.setdefault(said, []).append(scenario)
    return "; ".join(f"{' and '.join(sc)} at {said}" for said, sc in parts.items())


def throughput_vs_batch(data):
    ok = data.bench[data.bench.outcome == "ok"] if len(data.bench) else data.bench
    decode, mode = _decode_cells(data.bench)
    columns = [("prefill", _with_noise(ok[ok.scenario == "prefill"]) if len(ok) else ok, "prefill_tokens_per_s"),
               ("generate", _with_noise(decode), "decode_tokens_per_s")]
    order = _family_order(ok.variant, data.look) if len(ok) else []
    # one row per variant, both scenarios side by side: two panels whatever the number of variants
    fig, axes = style.figure(1, 2, panel=(4.4, 0.27 * max(len(order), 1) + 1.3), sharey=True)
    if not order:
        for ax in axes.flat:
            style.empty(ax, "no timings in these records")
        return fig, "Throughput at each batch size (no timings in these records)."
    sizes = sorted(int(b) for b in ok.batch_size.unique())
    shape = {bs: BATCH_MARKERS[i % len(BATCH_MARKERS)] for i, bs in enumerate(sizes)}
    y = {v: i for i, v in enumerate(order)}
    any_noisy = False
    absent: dict[str, dict[str, list[int]]] = {}  # why a row lacks markers -> scenario -> batch sizes
    for ax, (scenario, cells, col) in zip(axes[0], columns):
        # a band behind every other family keeps the groups apart
        for i, fam in enumerate(dict.fromkeys(data.look(v).family for v in order)):
            rows = [y[v] for v in order if data.look(v).family == fam]
            if i % 2:
                ax.axhspan(min(rows) - 0.5, max(rows) + 0.5, color=style.NEUTRAL, alpha=0.07, lw=0, zorder=0)
        if cells.empty:
            style.axes_text(ax, title=f"{scenario}: no timings")
            continue
        for variant, g in cells.groupby("variant", sort=False):
            g = g.sort_values("batch_size")
            lk = data.look(variant)
            yy = [y[variant]] * len(g)
            ax.plot(g[col], yy, color=lk.edge, lw=1.0, zorder=2)
            lo, hi = _spread(g, col)
            for (_, c), low, high in zip(g.iterrows(), lo, hi):
                any_noisy |= bool(c.noisy)
                ax.errorbar(c[col], y[variant], xerr=[[low], [high]], fmt=shape[int(c.batch_size)], color=lk.color,
                            mfc="none" if c.noisy else lk.color, mec=lk.edge, ecolor=lk.edge, ms=6, capsize=2,
                            zorder=3 + len(sizes) - sizes.index(int(c.batch_size)))  # smaller batch on top
        ax.set_xlim(left=0)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # five-digit tokens/s labels collide beyond ~5 ticks
        style.axes_text(ax, title=f"{scenario}" + (f" ({mode})" if scenario == "generate" else ""),
                        xlabel="tokens/s (from zero)")
        bench = data.bench if scenario == "prefill" else data.bench[data.bench["mode"].fillna("eager") == mode]
        for bs in sizes:
            for line in missing_here(bench, scenario, bs, cells[cells.batch_size == bs].variant, data.look):
                absent.setdefault(line, {}).setdefault(scenario, []).append(bs)
        ax.grid(axis="y", visible=False)
    axes[0][0].set_yticks(range(len(order)), order, fontsize=style.FONT["tick"])
    axes[0][0].set_ylim(len(order) - 0.5, -0.5)
    handles = [Line2D([], [], ls="", marker=shape[bs], color=style.NEUTRAL, ms=6, label=f"batch size {bs}")
               for bs in sizes]
    if any_noisy:
        handles.append(_hollow_handle(shape[sizes[0]]))
    # why a row lacks a marker: one note under both panels (the legend's title, so the layout makes room
    # for it), said once where both scenarios lack the same cells
    note = "\n".join(textwrap.fill(f"no marker for {_where(by)}: {line}", 110) for line, by in absent.items())
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=style.FONT["legend"],
               frameon=False, title=note or None, title_fontsize=style.FONT["note"])
    if note:  # the note's lines are added to the height, not taken from the rows
        w, h = fig.get_size_inches()
        fig.set_size_inches(w, h + 0.16 * (note.count("\n") + 1))
    n = int(columns[1][1].new_tokens.max()) if len(columns[1][1]) else 0
    caption = (f"Prefill (left) and generate ({n} new tokens, KV cache on, {mode} mode) throughput (right), from "
               "zero: a row per variant, grouped by family (colour; paler: fewer bits), a marker shape per batch "
               "size, joined by a line, so the gain from batching is the line's length. " + SPREAD + " " + HOLLOW)
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
    # the weights bar is the body, then the embedding table and output head stacked hatched on it,
    # where the record has the split (older records: the whole bar, unsplit)
    head = (pd.to_numeric(df["embedding_head_mb"]) if "embedding_head_mb" in df
            else pd.Series(float("nan"), index=df.index))
    known = head.notna().to_numpy()
    weights = df.weights_memory_mb.to_numpy(dtype=float)
    head_mb = head.fillna(0).to_numpy(dtype=float)
    for ax, col, title in zip(axes[0], ("weights_memory_mb", "peak_memory_mb"),
                              ("Weights", "Peak while benchmarked")):
        if col == "weights_memory_mb" and known.any():
            ax.barh(y, weights - head_mb, height=0.6, color=colors, edgecolor=edges)
            ax.barh(y, head_mb, left=weights - head_mb, height=0.6, color=colors, edgecolor=edges, hatch=HEAD_HATCH,
                    alpha=0.55)
        else:
            ax.barh(y, df[col], height=0.6, color=colors, edgecolor=edges)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # five-digit MB labels collide beyond ~5 ticks
        style.axes_text(ax, title=title, xlabel="MB")
        ax.grid(axis="y", visible=False)
    axes[0][0].set_yticks(y, df.variant, fontsize=style.FONT["tick"])
    handles = [Patch(facecolor=style.FAMILIES[f][0], label=style.FAMILIES[f][2])
               for f in dict.fromkeys(lk.family for lk in looks)]
    if known.any():
        handles.append(Patch(facecolor="white", edgecolor=style.NEUTRAL, hatch=HEAD_HATCH,
                             label="embedding + output head"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize=style.FONT["legend"],
               frameon=False)
    caption = ("Memory of the weights (left) and the peak memory measured during the benchmark (right; on the CPU "
               "the process's resident set, libraries included). Colour: the family; paler: fewer bits.")
    if known.any():
        caption += (" Hatched: the input embedding table and the output head (once when tied), stacked on the body "
                    "(the decoder layers)" + ("; a bar without hatching comes from a record that predates the split."
                                              if not known.all() else "."))
    unmeasured = [v for v, mb in zip(df.variant, pd.to_numeric(df["peak_memory_mb"])) if pd.isna(mb)]
    if unmeasured:
        caption += (f" No peak bar for {', '.join(unmeasured)}: not measured (llama.cpp on a CUDA run holds its "
                    "buffers outside torch's allocator; the record says so).")
    return fig, caption
