"""Print the README's results tables for a real-model report, from its CSVs (tests/test_readme_results.py
checks every quoted number against the same CSVs).

    .venv/bin/python tools/readme_tables.py results/smollm2-135m/report quality VARIANT...
    .venv/bin/python tools/readme_tables.py results/smollm2-135m/report speed VARIANT...
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

QUALITY = ["variant", "reference", "bits/weight", "weights (MB)", "define", "cloze", "Average",
           "Δ Average (95% noise)", "KL mean (nats)", "KL p99", "top-1 agreement", "perplexity ratio"]
SPEED = ["variant", "kernel", "load (s)", "prefill ms/token bs1 (IQR/median)", "prefill ms/token bs4",
         "decode tokens/s bs1 (IQR/median)", "decode tokens/s bs4", "peak memory (MB)"]


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def quality(report: Path, variants: list[str]) -> list[str]:
    q = pd.read_csv(report / "quality.csv").set_index("variant")
    s = pd.read_csv(report / "summary.csv").set_index("variant")
    out = [_row(QUALITY), _row(["---"] * len(QUALITY))]
    for v in variants:
        r, m = q.loc[v], s.loc[v]
        delta = ("0 (baseline)" if r.reference == v and r.delta_average_points == 0 else
                 f"{r.delta_average_points:.1f} (±{r.delta_noise_points:.1f})" + (" ≈" if str(r.within_noise) == "True" else ""))
        lo, hi = r.perplexity_ratio_ci95.split("–")
        out.append(_row([v, r.reference, f"{m.bits_per_weight:.2f}", f"{m.weights_memory_mb:.1f}",
                         f"{r.define:.1f} ± {r.define_se:.1f}", f"{r.cloze:.1f} ± {r.cloze_se:.1f}",
                         f"{r.Average:.1f}", delta, f"{r.kl_mean:.4f} ± {r.kl_mean_ci95:.4f}", f"{r.kl_p99:.3f}",
                         f"{r.top1_agreement:.3f} ± {r.top1_agreement_ci95:.3f}",
                         f"{r.perplexity_ratio:.3f} ({float(lo):.4f}–{float(hi):.4f})"]))
    return out


def speed(report: Path, variants: list[str]) -> list[str]:
    b = pd.read_csv(report / "benchmark.csv")
    s = pd.read_csv(report / "summary.csv").set_index("variant")
    out = [_row(SPEED), _row(["---"] * len(SPEED))]

    def cell(v, scenario, bs, col, noise=False):
        c = b[(b.variant == v) & (b.scenario == scenario) & (b.batch_size == bs)]
        if scenario == "generate":
            c = c[c.use_cache & (c["mode"].fillna("eager") == "eager")]
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
