"""The results tables of a real-model example's README, from its report's CSVs
(tests/test_readme_results.py checks every quoted number against the same CSVs).

    .venv/bin/python tools/readme_tables.py results/reference/cpu/smollm2-135m/report quality VARIANT...   # print one
    .venv/bin/python tools/readme_tables.py results/reference/cpu/smollm2-135m/report speed VARIANT...
    .venv/bin/python tools/readme_tables.py results/reference/cpu/smollm2-135m/report scoreboard VARIANT...
    .venv/bin/python tools/readme_tables.py REPORT_DIR rewrite "SECTION TITLE" [--readme PATH]
        # e.g. results/reference/cpu/smollm2-135m/report rewrite Results: rewrite, in the markdown
        # file's section of that title (default: the README beside the report folder, here
        # results/reference/cpu/smollm2-135m/README.md), every quality and scoreboard table from the
        # report, same variants in the same order; a scoreboard lists every variant of the section's
        # quality tables that has per-item outcomes (paired flips), the baseline first
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

QUALITY_HEAD = ["variant", "reference", "bits/weight", "weights (MB)"]
QUALITY_TAIL = ["Average", "Δ Average (95% noise)", "KL mean (nats)", "KL p99", "top-1 agreement", "perplexity ratio"]
SPEED = ["variant", "kernel", "load (s)", "prefill ms/token bs1 (IQR/median)", "prefill ms/token bs4",
         "decode tokens/s bs1 (IQR/median)", "decode tokens/s bs4", "peak memory (MB)"]


def _on_zero(r) -> bool:
    """A paired interval with exactly one end on zero (the report's reading says so: readings.AT_EDGE)."""
    low, high = r.get("delta_ci95_low"), r.get("delta_ci95_high")
    if pd.isna(low) or pd.isna(high):
        return False
    return (abs(low) < 1e-9) != (abs(high) < 1e-9)


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _rule(columns: int) -> str:
    return "|" + "---|" * columns


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
    out = [_row(header), _rule(len(header))]
    for v in variants:
        r, m = q.loc[v], s.loc[v]
        inside = (" ≈ edge" if _on_zero(r) else " ≈") if str(r.within_noise) == "True" else ""
        delta = ("0 (baseline)" if r.reference == v and r.delta_average_points == 0 else
                 f"{r.delta_average_points:.1f} (±{r.delta_noise_points:.1f}){inside}")
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
    out = [_row(SPEED), _rule(len(SPEED))]

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
                         cell(v, "prefill", 1, "prefill_ms_per_token", True),
                         cell(v, "prefill", 4, "prefill_ms_per_token"),
                         cell(v, "generate", 1, "decode_tokens_per_s", True),
                         cell(v, "generate", 4, "decode_tokens_per_s"),
                         f"{peak:.0f}"]))
    return out


SCOREBOARD = ["variant", "paired 95% of Δ", "flips lost/gained", "KL median", "KL p99", "KL p99.9", "KL max",
              "RMS Δp", "ln PPL ratio"]


def _spread(value: float, ci, digits: int) -> str:
    """value with its 95% interval: a bootstrap interval "lo–hi" (quantiles) or a half-width."""
    if isinstance(ci, str):
        lo, hi = (float(x) for x in ci.split("–"))
        return f"{value:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"
    return _with_noise(value, ci, digits)


def scoreboard(report: Path, variants: list[str]) -> list[str]:
    q = pd.read_csv(report / "quality.csv").set_index("variant")
    out = [_row(SCOREBOARD), _rule(len(SCOREBOARD))]
    for v in variants:
        r = q.loc[v]
        unpaired = pd.isna(r.flips_right_to_wrong)
        paired = "–" if unpaired else f"{r.delta_ci95_low:.2f} to {r.delta_ci95_high:.2f}"
        flips = "–" if unpaired else f"{r.flips_right_to_wrong:.0f} / {r.flips_wrong_to_right:.0f}"
        out.append(_row([v, paired, flips, f"{r.kl_median:.4f}", _spread(r.kl_p99, r.kl_p99_ci95, 3),
                         _spread(r.kl_p99_9, r.kl_p99_9_ci95, 3), f"{r.kl_max:.2f}",
                         _spread(r.delta_p_rms, r.delta_p_rms_ci95, 4),
                         _spread(r.ln_perplexity_ratio, r.ln_perplexity_ratio_ci95, 4)]))
    return out


def rewrite(readme: Path, title: str, report: Path) -> None:
    text = readme.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 3)
    end = len(text) if end < 0 else end
    lines = text[start:end].split("\n")
    q = pd.read_csv(report / "quality.csv").set_index("variant")
    quoted = [row.strip("|").split("|")[0].strip() for _, row in _blocks(lines, QUALITY_HEAD)]
    paired = [v for v in dict.fromkeys(quoted)
              if q.at[v, "reference"] == v or pd.notna(q.at[v, "flips_right_to_wrong"])]
    out, i = [], 0
    while i < len(lines):
        kind = ("quality" if lines[i].startswith(_row(QUALITY_HEAD)[:-2]) else
                "scoreboard" if lines[i].startswith(_row(SCOREBOARD[:2])[:-2]) else None)
        if kind is None:
            out.append(lines[i])
            i += 1
            continue
        j = i + 2
        while j < len(lines) and lines[j].startswith("|"):
            j += 1
        names = [r.strip("|").split("|")[0].strip() for r in lines[i + 2:j]] if kind == "quality" else paired
        out += (quality if kind == "quality" else scoreboard)(report, names)
        i = j
    readme.write_text(text[:start] + "\n".join(out) + text[end:])


def _blocks(lines: list[str], head: list[str]):
    """(header, row) of every table row under a header starting with `head`."""
    inside = False
    for line in lines:
        if line.startswith(_row(head)[:-2]):
            inside, header = True, line
            continue
        if inside and line.startswith("|---"):
            continue
        if inside and line.startswith("|"):
            yield header, line
        else:
            inside = False


if __name__ == "__main__":
    folder, kind, *names = sys.argv[1:]
    if kind == "rewrite":  # rewrite TITLE [--readme PATH]
        readme = Path(names[2]) if names[1:2] == ["--readme"] else Path(folder).resolve().parent / "README.md"
        rewrite(readme, names[0], Path(folder))
    else:
        print("\n".join({"quality": quality, "speed": speed, "scoreboard": scoreboard}[kind](Path(folder), names)))
