"""What LoRA fine-tuning costs on each base, and whether it trains alike."""
from __future__ import annotations

import numpy as np

from quantbench.report import style

LINESTYLES = ["-", "--", ":", "-."]


def _step_quartiles(records: list[dict]) -> dict[str, tuple[float, float, float]]:
    """base -> (p25, median, p75) of the timed step times, where the record keeps them."""
    out = {}
    for r in records:
        steps = r["metrics"].get("step_ms") if r["stage"] == "finetune" else None
        if steps:
            p25, med, p75 = np.percentile(steps, [25, 50, 75])
            out[r["subject"]] = (float(p25), float(med), float(p75))
    return out


def step_time(data):
    ft = data.finetune
    fig, axes = style.figure(1, 2, panel=(4.6, 0.45 * max(len(ft), 1) + 1.8))
    if ft.empty:
        for ax in axes[0]:
            style.empty(ax, "no fine-tuning records")
        return fig, "Fine-tuning step time and memory per base (no fine-tuning records)."
    quartiles = _step_quartiles(data.records)
    y = list(range(len(ft)))
    looks = [data.look(b) for b in ft.base]
    colors, edges = [lk.color for lk in looks], [lk.edge for lk in looks]
    lo, hi = [], []
    for v, med in zip(ft.variant, ft.finetune_step_ms):
        p25, _, p75 = quartiles.get(v, (med, med, med))
        lo.append(max(med - p25, 0))
        hi.append(max(p75 - med, 0))
    ax_t, ax_m = axes[0]
    ax_t.barh(y, ft.finetune_step_ms, xerr=[lo, hi], color=colors, edgecolor=edges, capsize=4, height=0.6,
              error_kw={"ecolor": style.NEUTRAL})
    ax_m.barh(y, ft.finetune_peak_memory_mb, color=colors, edgecolor=edges, height=0.6)
    ax_t.set_yticks(y, ft.base, fontsize=style.FONT["tick"])
    ax_m.set_yticks(y, [""] * len(y))
    style.axes_text(ax_t, title="Step time per base", xlabel="ms per optimizer step")
    style.axes_text(ax_m, title="Peak memory while training", xlabel="MB")
    for ax in axes[0]:
        ax.grid(axis="y", visible=False)
    steps = ", ".join(sorted({str(int(s)) for s in ft.steps}))
    caption = (f"LoRA fine-tuning on each base ({steps} steps): the median step time with the interquartile range "
               "of the steps as error bars, and the peak memory. Colour: the base's family; paler: fewer bits.")
    return fig, caption


def loss_curves(data):
    curves = {r["subject"]: r["metrics"]["loss_curve"] for r in data.records if r["stage"] == "finetune"}
    fig, axes = style.figure(1, 1, panel=(7.0, 4.0))
    ax = axes[0][0]
    if not curves:
        style.empty(ax, "no fine-tuning records")
        return fig, "Training loss (no fine-tuning records)."
    for i, (variant, losses) in enumerate(curves.items()):
        lk = data.look(variant.removesuffix("+lora"))
        ax.plot(range(1, len(losses) + 1), losses, color=lk.edge, ls=LINESTYLES[i % len(LINESTYLES)],
                lw=1.2, label=variant)
    ax.legend(fontsize=style.FONT["legend"], loc="upper right")
    style.axes_text(ax, title="LoRA fine-tuning loss", xlabel="step", ylabel="training loss")
    return fig, "Training loss at each step of each LoRA fine-tune (one batch per step, no smoothing)."
