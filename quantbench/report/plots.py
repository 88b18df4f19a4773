"""Matplotlib figures for the report: latency against batch size, memory per variant, quality
against memory and bits per weight with the Pareto front."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def latency_vs_batch(bench: pd.DataFrame, path, longest_new_tokens: int) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ok = bench[bench.outcome == "ok"]
    pre = ok[ok.scenario == "prefill"]
    dec = ok[(ok.scenario == "generate") & (ok.use_cache == True)  # noqa: E712
             & (ok.new_tokens == longest_new_tokens) & (ok["mode"].fillna("eager") == "eager")]
    for variant, g in pre.groupby("variant", sort=False):
        axes[0].plot(g.batch_size, g.prefill_tokens_per_s, marker="o", label=variant)
    for variant, g in dec.groupby("variant", sort=False):
        axes[1].plot(g.batch_size, g.decode_tokens_per_s, marker="o", label=variant)
    axes[0].set(title="Prefill throughput", xlabel="batch size", ylabel="tokens/s")
    axes[1].set(title=f"Generate throughput ({longest_new_tokens} new tokens, KV cache on)",
                xlabel="batch size", ylabel="tokens/s")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(fig, path)


def memory_per_variant(summary: pd.DataFrame, path) -> None:
    df = summary.sort_values("weights_memory_mb")
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(df) + 1.5))
    y = range(len(df))
    ax.barh([i + 0.2 for i in y], df.weights_memory_mb, height=0.4, label="weights (MB)")
    ax.barh([i - 0.2 for i in y], df.peak_memory_mb, height=0.4, label="peak during benchmark (MB)")
    ax.set_yticks(list(y), df.variant, fontsize=8)
    ax.set(xlabel="MB", title="Memory per variant")
    ax.legend()
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)


def pareto_front(points: pd.DataFrame, x: str, y: str, higher_is_better: bool) -> pd.DataFrame:
    """Points not beaten by another with less (or equal) x and better (or equal) y."""
    df = points.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, not higher_is_better])
    front, best = [], None
    for _, row in df.iterrows():
        if best is None or (row[y] > best if higher_is_better else row[y] < best):
            front.append(row)
            best = row[y]
    return pd.DataFrame(front)


def quality_vs_memory(summary: pd.DataFrame, path) -> None:
    """The quantization methods only: fine-tuned variants answer another question (the recipe
    table) and their KL is against the trained adapter, not the base model."""
    summary = summary[~summary.finetuned] if "finetuned" in summary else summary
    metrics = [("Average", "quality average (points)", True), ("kl_mean", "KL to reference (nats/token)", False)]
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    for col, (x, xlabel) in enumerate([("weights_memory_mb", "weights (MB)"), ("bits_per_weight", "bits per weight")]):
        for row, (y, ylabel, hib) in enumerate(metrics):
            ax = axes[row][col]
            if x not in summary or y not in summary:  # e.g. speed-only setups have no quality
                ax.set_axis_off()
                continue
            df = summary.dropna(subset=[x, y])
            ax.scatter(df[x], df[y], s=25)
            for _, p in df.iterrows():
                ax.annotate(p.variant, (p[x], p[y]), fontsize=6, xytext=(3, 2), textcoords="offset points")
            front = pareto_front(df, x, y, hib)
            if len(front):
                ax.step(front[x], front[y], where="post", color="tab:red", label="Pareto front")
                ax.legend(fontsize=8)
            if y == "kl_mean" and (df[y] > 0).any():
                ax.set_yscale("symlog", linthresh=1e-4)
            ax.set(xlabel=xlabel, ylabel=ylabel)
            ax.grid(alpha=0.3)
    fig.suptitle("Quality of each quantization method against memory and bits per weight")
    _save(fig, path)


def loss_curves(curves: dict[str, list[float]], path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, losses in curves.items():
        ax.plot(range(1, len(losses) + 1), losses, label=name)
    ax.set(xlabel="step", ylabel="training loss", title="LoRA fine-tuning loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)
