"""The recipe at each stage: quantize, fine-tune (QLoRA), merge (into the original or the dequantized
weights), re-quantize; how far each stage's model is from what the stage before meant to keep."""
from __future__ import annotations

import math

import pandas as pd

from quantbench.experiment import requantize_targets
from quantbench.report import style

LINESTYLES = {"fp": "--", "dequant": "-"}


def _kl(quality: pd.DataFrame) -> dict[str, tuple[float, float | None, str]]:
    """variant -> (KL, its 95% half-width or None, the reference it is measured against)."""
    if quality.empty or "kl_mean" not in quality:
        return {}
    ci = quality["kl_mean_ci95"] if "kl_mean_ci95" in quality else [None] * len(quality)
    return {v: (k, c if c is not None and pd.notna(c) else None, ref)
            for v, k, c, ref in zip(quality.variant, quality.kl_mean, ci, quality.reference) if pd.notna(k)}


def _log_axis(ax, values) -> None:
    """Log where every KL is positive; linear below the smallest one where one is exactly 0."""
    positive = [v for v in values if v > 0]
    if len(positive) == len(values):
        ax.set_yscale("log")
        return
    floor = 10 ** math.floor(math.log10(min(positive))) if positive else 1.0
    ax.set_yscale("symlog", linthresh=floor)
    ax.set_ylim(bottom=0)


def _path(ax, xs, variants, kl, looks, ls, label=None):
    """One path through the stages: a neutral line, each stage's point in its variant's look."""
    ys = [kl[v][0] for v in variants]
    ax.plot(xs, ys, color=style.NEUTRAL, ls=ls, lw=1.2, label=label, zorder=2)
    for x, v in zip(xs, variants):
        value, hw, _ = kl[v]
        lk = looks(v)
        # KL is not negative: an interval stops at zero
        err = None if hw is None else [[min(hw, value)], [hw]]
        ax.errorbar([x], [value], yerr=err, fmt=lk.marker, color=lk.color, mec=lk.edge, ecolor=lk.edge, ms=9,
                    capsize=4, zorder=3)
    return ys


def recipe_kl(data):
    kl = _kl(data.quality)
    recipes = [r for r in data.params.get("recipes", []) if f"{r['finetune_on']}+lora" in kl]
    if not recipes:
        fig, axes = style.figure(1, 1, panel=(5.0, 1.5))
        style.empty(axes[0][0], "no recipe variants in these records")
        return fig, "The recipe's KL at each stage (no recipe variants in these records)."
    fig, axes = style.figure(len(recipes), 2, panel=(5.0, 4.0))
    for row, r in zip(axes, recipes):
        base, trained = r["finetune_on"], f"{r['finetune_on']}+lora"
        left, right = row
        # fine-tuning is meant to move the model: these two are against the base model's own reference
        stages = [v for v in (base, trained) if v in kl]
        ys = _path(left, list(range(len(stages))), stages, kl, data.look, "-")
        left.set_xticks(range(len(stages)), ["quantized base" if v == base else "QLoRA model" for v in stages])
        left.set_xlim(-0.5, len(stages) - 0.5)
        _log_axis(left, ys)
        style.axes_text(left, title=f"{base} and its fine-tune", ylabel=f"KL to {kl[stages[0]][2]} (nats/token)")
        # what merging and re-quantizing keep of the fine-tune: against the trained model
        every = []
        targets = requantize_targets(r)
        for kind in r.get("merge_into", ["fp", "dequant"]):
            merged = f"{trained}+merge-{kind}"
            label = f"merged into the {'dequantized' if kind == 'dequant' else 'original'} weights"
            for x, target in enumerate(targets or [None], start=1):
                path = [v for v in [merged] + ([f"{merged}+{target}"] if target else []) if v in kl]
                if not path:
                    continue
                xs = [0 if v == merged else x for v in path]
                every += _path(right, xs, path, kl, data.look, LINESTYLES.get(kind, ":"),
                               label=label if x == 1 else None)
        right.set_xticks(range(1 + len(targets)), ["merged"] + [f"re-quantized\n({t})" for t in targets])
        right.set_xlim(-0.5, len(targets) + 0.5)
        if every:
            _log_axis(right, every)
            right.legend(fontsize=style.FONT["legend"], loc="best")
        style.axes_text(right, title="merge, then re-quantize", ylabel=f"KL to {trained} (nats/token)")
    has_ci = all(k[1] is not None for k in kl.values())
    caption = ("The recipe stage by stage. Left: the quantized base and its QLoRA fine-tune against the unquantized "
               "model (fine-tuning is meant to move it). Right: the merged models and their re-quantized versions "
               "against the QLoRA model served unmerged, i.e. what merging and re-quantizing lose of the fine-tune. "
               + ("Error bars: 95% intervals over the held-out windows." if has_ci else
                  "These records hold no interval for KL, so there are no error bars."))
    return fig, caption
