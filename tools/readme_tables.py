"""Print the README's results tables for a real-model report, from its CSVs (tests/test_readme_results.py
checks every quoted number against the same CSVs).

    .venv/bin/python tools/readme_tables.py results/smollm2-135m/report quality VARIANT...
    .venv/bin/python tools/readme_tables.py results/smollm2-135m/report speed VARIANT...
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

QUALITY_HEAD = ["variant", "reference", "bits/weight", "weights (MB)"]
QUALITY_TAIL = ["Average", "Δ Average (95% noise)", "KL mean (nats)", "KL p99", "top-1 agreement", "perplexity ratio"]
SPEED = ["variant", "kernel", "load (s)", "prefill ms/token bs1 (IQR/median)", "prefill ms/token bs4",
         "decode tokens/s bs1 (IQR/median)", "decode tokens/s bs4", "peak memory (MB)"]


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _with_noise(value: float, noise: float, digits: int) -> str:
    text = f"{value:.{digits}f}"
    return text if pd.isna(noise) else f"{text} ± {noise:.{digits}f}"


def _kl(value: float, ci: float) -> str:
    if 0 < value < 1e-3:  # the toy's 8-bit and merge figures: four decimals would print 0.0000
        return f"{value:.2e}" + ("" if pd.isna(ci) else f" ± {ci:.1e}")
    return _with_noise(value, ci, 4)


def quality(report: Path, variants: list[str]) -> list[str]:
    q = pd.read_csv(report / "quality.csv").set_index("variant")
    s = pd.read_csv(report / "summary.csv").set_index("variant")
    # the suite's tasks: the score columns that have a standard-error column beside them
    tasks = [c for c in q.columns if f"{c}_se" in q.columns and c != "Average"]
    header = QUALITY_HEAD + tasks + QUALITY_TAIL
    out = [_row(header), _row(["---"] * len(header))]
    for v in variants:
        r, m = q.loc[v], s.loc[v]
        delta = ("0 (baseline)" if r.reference == v and r.delta_average_points == 0 else
                 f"{r.delta_average_points:.1f} (±{r.delta_noise_points:.1f})" + (" ≈" if str(r.within_noise) == "True" else ""))
        if isinstance(r.perplexity_ratio_ci95, str):
            lo, hi = r.perplexity_ratio_ci95.split("–")
            ratio = f"{r.perplexity_ratio:.3f} ({float(lo):.4f}–{float(hi):.4f})"
        else:  # the reference against itself
            ratio = f"{r.perplexity_ratio:.3f}"
        out.append(_row([v, r.reference, f"{m.bits_per_weight:.2f}", f"{m.weights_memory_mb:.1f}",
                         *[_with_noise(r[t], r[f"{t}_se"], 1) for t in tasks],
                         f"{r.Average:.1f}", delta, _kl(r.kl_mean, r.kl_mean_ci95),
                         f"{r.kl_p99:.3f}", _with_noise(r.top1_agreement, r.top1_agreement_ci95, 3), ratio]))
    return out


def speed(report: Path, variants: list[str]) -> list[str]:
    b = pd.read_csv(report / "benchmark.csv")
    s = pd.read_csv(report / "summary.csv").set_index("variant")
    out = [_row(SPEED), _row(["---"] * len(SPEED))]

    def cell(v, scenario, bs, col, noise=False):
        c = b[(b.variant == v) & (b.scenario == scenario) & (b.batch_size == bs)]
        if scenario == "generate":  # eager with the cache, at the longest generation (as the report's tables)
            c = c[c.use_cache & (c["mode"].fillna("eager") == "eager")]
            c = c[c.new_tokens == c.new_tokens.max()]
        ok = c[c.outcome == "ok"]
        if ok.empty:
            return "–"
        x = ok.iloc[0]
        value = f"{x[col]:.2f}" if col == "prefill_ms_per_token" else f"{x[col]:.1f}"
        return value + (f" ({x.iqr_over_median:.2f})" if noise else "")

    for v in variants:
        peak = b[(b.variant == v) & (b.outcome == "ok")].peak_memory_mb.max()
        out.append(_row([v, s.loc[v, "kernel"], f"{s.loc[v, 'load_s']:.2f}",
                         cell(v, "prefill", 1, "prefill_ms_per_token", True), cell(v, "prefill", 4, "prefill_ms_per_token"),
                         cell(v, "generate", 1, "decode_tokens_per_s", True), cell(v, "generate", 4, "decode_tokens_per_s"),
                         f"{peak:.0f}"]))
    return out


if __name__ == "__main__":
    folder, kind, *names = sys.argv[1:]
    print("\n".join({"quality": quality, "speed": speed}[kind](Path(folder), names)))
