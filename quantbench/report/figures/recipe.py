"""Does the recipe pay off? Quantize, fine-tune (QLoRA), merge (into the original or the dequantized
weights), re-quantize: each stage's task average and KL beside the untuned model quantized the way the
recipe deploys, the bar to beat."""
from __future__ import annotations

import pandas as pd
from matplotlib.lines import Line2D

from quantbench.experiment import requantize_targets
from quantbench.report import paired, pareto, style

BAR_LINESTYLES = ["--", ":", "-."]  # one per deploy method's bar to beat
BAR_GID = "bar-to-beat"  # the reference lines' gid (tests find them by it)


def _value(q: pd.DataFrame, variant: str, col: str) -> float | None:
    if q.empty or col not in q or variant not in set(q.variant):
        return None
    v = q.loc[q.variant == variant, col].iloc[0]
    return float(v) if pd.notna(v) else None


def _stages(r: dict, present: set[str]) -> list[tuple[str, str]]:
    """(variant, tick label) of each stage of recipe `r` that has a quality record, in recipe order."""
    base, trained = r["finetune_on"], f"{r['finetune_on']}+lora"
    kinds = r.get("merge_into", ["fp", "dequant"])
    out = [(base, f"{base}\n(untuned)"), (trained, f"QLoRA adapter\non {base}")]
    out += [(f"{trained}+merge-{k}", "merged into\n" + ("dequantized" if k == "dequant" else "fp weights"))
            for k in kinds]
    out += [(f"{trained}+merge-{k}+{t}", f"{k} merge\n→ {t}") for t in requantize_targets(r) for k in kinds]
    return [(v, label) for v, label in out if v in present]


def _measured(data, stages, col: str, hw_of):
    """(x, variant, value, look, 95% half-width) of each stage that has a value in `col`."""
    for x, (v, _) in enumerate(stages):
        value = _value(data.quality, v, col)
        if value is not None:
            yield x, v, value, data.look(v), hw_of(v)


def _stage_axis(ax, stages) -> None:
    ax.set_xticks(range(len(stages)), [label for _, label in stages], fontsize=style.FONT["tick"])
    ax.set_xlim(-0.6, len(stages) - 0.4)
    ax.grid(axis="x", visible=False)


def _dots(ax, data, stages, col: str, hw_of, hollow) -> None:
    """One marker per stage with its 95% error bar: task averages are read as differences in points,
    so the axis spans the values and the bars to beat rather than starting at zero."""
    for x, v, value, lk, hw in _measured(data, stages, col, hw_of):
        ax.errorbar(x, value, yerr=None if hw is None else [[hw], [hw]], fmt=lk.marker, ms=10, color=lk.color,
                    mfc="none" if hollow(v) else lk.color, mec=lk.edge, mew=1.5, ecolor=lk.edge, capsize=4,
                    zorder=5)
    _stage_axis(ax, stages)


def _bars(ax, data, stages, col: str, hw_of, hollow=lambda v: False) -> None:
    """One bar per stage in its variant's look, from zero, with 95% error bars where recorded."""
    for x, v, value, lk, hw in _measured(data, stages, col, hw_of):
        err = None if hw is None else [[min(hw, value)], [hw]]  # a non-negative quantity stops at zero
        ax.bar(x, value, width=0.65, color="none" if hollow(v) else lk.color, edgecolor=lk.edge, lw=1.4,
               yerr=err, capsize=4, error_kw={"ecolor": style.NEUTRAL, "lw": 1})
    _stage_axis(ax, stages)
    ax.set_ylim(bottom=0)
    # a bar too short to see says its value, so that it does not read as missing
    top = ax.get_ylim()[1]
    for x, _, value, _, _ in _measured(data, stages, col, hw_of):
        if value < 0.02 * top:
            ax.annotate(f"{value:.1g}", (x, value), xytext=(0, 3), textcoords="offset points", ha="center",
                        va="bottom", fontsize=style.FONT["note"],
                        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85}, zorder=6)


def _bar_to_beat(ax, data, targets: list[str], col: str) -> list[Line2D]:
    """The untuned deploy models' value as horizontal lines across the panel."""
    handles = []
    for i, t in enumerate(targets):
        value = _value(data.quality, t, col)
        if value is None:
            continue
        line = ax.axhline(value, color=data.look(t).edge, ls=BAR_LINESTYLES[i % len(BAR_LINESTYLES)], lw=1.4,
                          zorder=4)
        line.set_gid(BAR_GID)
        handles.append(Line2D([], [], color=data.look(t).edge, ls=line.get_linestyle(), lw=1.4,
                              label=f"{t} without the recipe: the bar to beat"))
    return handles


def recipe_kl(data):
    q = data.quality
    present = set(q.variant) if len(q) else set()
    recipes = [r for r in data.params.get("recipes", []) if f"{r['finetune_on']}+lora" in present]
    if not recipes:
        fig, axes = style.figure(1, 1, panel=(5.0, 1.5))
        style.empty(axes[0][0], "no recipe variants in these records")
        return fig, "Whether the recipe pays off (no recipe variants in these records)."
    baseline = data.params.get("baseline", "fp32")
    layout, ratios = [], None
    for i in range(len(recipes)):
        layout += [[f"avg{i}", f"avg{i}"], [f"klbase{i}", f"kltuned{i}"]]
    stage_lists = [_stages(r, present) for r in recipes]
    n = max(len(s) for s in stage_lists)
    ratios = [2, max(n - 2, 1)]
    fig, axd = style.mosaic(layout, (max(1.15 * n + 1.5, 7.0), 7.4 * len(recipes)), width_ratios=ratios)
    handles = []
    for i, (r, stages) in enumerate(zip(recipes, stage_lists)):
        trained = f"{r['finetune_on']}+lora"
        targets = requantize_targets(r)
        deploy = {f"{trained}+merge-{k}+{t}": t for t in targets for k in r.get("merge_into", ["fp", "dequant"])}

        def avg_hw(v):
            se = _value(q, v, "Average_se")
            return None if se is None else pareto.Z95 * se

        def inside_noise(v):
            """A deployed model whose task average is within the 95% noise of its bar to beat: the paired
            interval over the same items where both have per-item results, else both intervals combined."""
            t = deploy.get(v)
            if t in data.items and v in data.items:
                both = paired.compare_items(data.items[v], data.items[t], sorted(data.items[t]["tasks"]))
                if both is not None:
                    return both["low"] <= 0 <= both["high"]
            a, b, ha, hb = (_value(q, v, "Average"), _value(q, t, "Average"), avg_hw(v), avg_hw(t)) if t \
                else (None,) * 4
            return None not in (a, b, ha, hb) and abs(a - b) <= (ha ** 2 + hb ** 2) ** 0.5

        ax = axd[f"avg{i}"]
        _dots(ax, data, stages, "Average", avg_hw, inside_noise)
        found = _bar_to_beat(ax, data, targets, "Average")
        top = _value(q, baseline, "Average")
        if top is not None:
            ax.axhline(top, color=style.NEUTRAL, lw=1.0, ls="-", zorder=4)
            found.append(Line2D([], [], color=style.NEUTRAL, lw=1.0, label=f"{baseline}: unquantized, untuned"))
        style.axes_text(ax, title=f"Task average at each stage of the recipe on {r['finetune_on']}",
                        ylabel="task average (points)")
        handles = handles or found

        def kl_hw(v):
            return _value(q, v, "kl_mean_ci95")

        # KL is measured against each stage's reference: the base and its fine-tune against the
        # unquantized model; merged and re-quantized models against the QLoRA model they keep
        against_base = [(v, lab) for v, lab in stages if v in (r["finetune_on"], trained)]
        against_tuned = [(v, lab) for v, lab in stages if (v, lab) not in against_base]
        for key, part, ref in ((f"klbase{i}", against_base, baseline), (f"kltuned{i}", against_tuned, trained)):
            ax = axd[key]
            if not part:
                style.empty(ax, f"no KL to {ref} in these records")
                continue
            _bars(ax, data, part, "kl_mean", kl_hw)
            title = f"KL to {ref}"
            if ref == baseline:
                _bar_to_beat(ax, data, targets, "kl_mean")
            else:
                # the untuned deploy model's KL is to the baseline, another reference: a line here
                # would set a KL to the QLoRA model against a KL to the unquantized model
                title += f"\n(no bar to beat: the untuned deploy model's KL is to {baseline})"
            style.axes_text(ax, title=title, ylabel="KL (nats/token, from zero)" if key.startswith("klb")
                            else None)
    if any(inside_noise(v) for v, _ in stage_lists[-1]):
        handles.append(Line2D([], [], ls="", marker="o", mfc="none", mec=style.NEUTRAL, ms=8,
                              label="hollow: within the 95% noise of its bar to beat"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 2),
               fontsize=style.FONT["legend"], frameon=False)
    has_ci = q["kl_mean_ci95"].notna().all() if "kl_mean_ci95" in q else False
    caption = ("Whether the recipe pays off: each stage's task average (top; points, read as differences) and KL "
               "(bottom; bars from zero, read as ratios), "
               "beside the untuned model quantized the way the recipe deploys (dashed lines, the bar to beat; the "
               "solid line is the unquantized model). The deployed models should reach or pass the line in task "
               "average and stay below it in KL. KL is against each stage's reference: the base and its QLoRA "
               f"fine-tune against {baseline} (bottom left, beside the untuned deploy model's KL to {baseline}, i.e. "
               "what quantizing the original loses), the merged and re-quantized models against the QLoRA "
               "model they are meant to keep (bottom right, with no bar to beat: no untuned model has a KL to the "
               "QLoRA model). Error bars: 95% intervals"
               + (" over the held-out windows for KL" if has_ci else " (none recorded for KL)")
               + ". Hollow markers: a deployed model whose task average is within the 95% noise of its bar to beat "
               "(paired over the same items where both have per-item results; the error bars are each model's own).")
    return fig, caption
