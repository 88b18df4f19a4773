"""The blog comparison's A100 tables beside ours, each side as ratios to its own fp16 row, and the
blog's sentences checked against our cells with their noise.

Source: "Overview of natively supported quantization schemes in Transformers" (Hugging Face blog,
2023-09-12). It prints one table as text: Llama-2-13b on an A100, prompt 512, batch 1 and 16, which
it calls prefill. The optimum README it links (huggingface/optimum, tests/benchmark/README.md) holds
the same numbers under "Generation benchmark results": prompt 512, exactly 512 new tokens, latency
per generated token averaged over the generation; its prefill-only figures (one forward of the
prompt) are a separate table there. Both are in comparison_a100.csv (rows `generate-512` and
`prefill-512`). The blog's Llama-2-7b generate grid, generation lengths and fine-tuning results are
bar charts without printed numbers: only their sentences (CLAIMS) are checked.

Ratios, not absolute figures: an A100 and another GPU differ in bandwidth and compute, and the
blog's kernels (exllama, auto-gptq's CUDA) are not ours, so only "how far from fp16" carries over.

Usage: python tools/gpu/comparison.py REPORT_DIR > REPORT_DIR/comparison.md
(REPORT_DIR holds the report's benchmark.csv and, where fine-tuning ran, finetune.csv.)
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from quantbench.report import readings, tables

A100 = Path(__file__).with_name("comparison_a100.csv")
BASELINE = "fp16"


def family(variant: str) -> str | None:
    """The comparison's method that one of our variants stands for (None: the blog has no such row)."""
    if variant == BASELINE:
        return "fp16"
    if variant.startswith("gptq-4bit"):
        return "gptq"
    if variant.startswith(("bnb-nf4", "bnb-fp4")):
        return "bnb-4bit"
    return None


def a100_ratios(table: str) -> pd.DataFrame:
    """The A100 rows of one table with latency, memory and load time as ratios to its fp16 row at the
    same batch size."""
    df = pd.read_csv(A100)
    df = df[df.table == table].copy()
    base = df[df.method == "fp16"].set_index("batch_size")
    for col in ("latency_ms", "peak_memory_mb", "load_s"):
        df[f"{col}_x_fp16"] = df[col].to_numpy() / base.loc[df.batch_size, col].to_numpy()
    return df


def _md(df: pd.DataFrame, digits: int = 2) -> str:
    return df.to_markdown(index=False, floatfmt=f".{digits}f") + "\n"


def _ok(bench: pd.DataFrame) -> pd.DataFrame:
    """Measured cells of the plain variants: the blog has no adapter rows."""
    bench = bench.assign(noisy=tables.noisy_mask(bench))
    return bench[(bench.outcome == "ok") & ~bench.variant.str.contains("+", regex=False)]


def _with_ratio(rows: pd.DataFrame, value: str, keys: list[str]) -> pd.DataFrame:
    """rows plus `<value>_x_fp16`: the value over the baseline's at the same keys (NaN without one)."""
    base = rows.loc[rows.variant == BASELINE, keys + [value]].rename(columns={value: "_base"})
    out = rows.merge(base, on=keys, how="left", validate="many_to_one")
    return out.assign(**{f"{value}_x_fp16": out[value] / out["_base"]}).drop(columns="_base")


def prefill_section(bench: pd.DataFrame) -> list[str]:
    rows = bench[(bench.scenario == "prefill") & (bench.prompt_len == 512)].copy()
    out = ["## Prefill, prompt 512 (one forward of the prompt)\n"]
    if rows.empty:
        return out + ["Not measured in this run (benchmark.prefill at prompt_len 512).\n"]
    for col in ("prefill_latency_ms", "peak_memory_mb", "load_s"):
        rows = _with_ratio(rows, col, ["batch_size"])
    a100 = {(r.method, r.batch_size): r for r in a100_ratios("prefill-512").itertuples()}
    nan = float("nan")
    rows["a100_latency_x_fp16"] = [getattr(a100.get((family(v), b)), "latency_ms_x_fp16", nan)
                                   for v, b in zip(rows.variant, rows.batch_size)]
    rows["a100_memory_x_fp16"] = [getattr(a100.get((family(v), b)), "peak_memory_mb_x_fp16", nan)
                                  for v, b in zip(rows.variant, rows.batch_size)]
    cols = ["variant", "kernel", "batch_size", "load_s", "load_s_x_fp16", "prefill_latency_ms",
            "prefill_latency_ms_x_fp16", "iqr_over_median", "peak_memory_mb", "peak_memory_mb_x_fp16",
            "a100_latency_x_fp16", "a100_memory_x_fp16"]
    return out + ["A100 ratios: optimum's prefill-only table (exllama for GPTQ; it has no bitsandbytes row).\n",
                  _md(rows.sort_values(["batch_size", "variant"])[cols])]


def generate512_section(bench: pd.DataFrame) -> list[str]:
    rows = bench[(bench.scenario == "generate") & (bench["mode"].fillna("eager") == "eager")
                 & (bench.prompt_len == 512) & (bench.new_tokens == 512) & (bench.use_cache == True)].copy()  # noqa: E712
    out = ["## The blog's 13b table: prompt 512, 512 new tokens (eager generate)\n"]
    a100 = a100_ratios("generate-512")
    theirs = a100[["method", "kernel", "batch_size", "load_s", "latency_ms", "latency_ms_x_fp16", "peak_memory_mb",
                   "peak_memory_mb_x_fp16"]]
    out += ["A100 (the blog): latency per generated token, prefill included.\n", _md(theirs)]
    if rows.empty:
        return out + ["Ours: not measured in this run (eager generate at prompt_len 512, new_tokens 512).\n"]
    rows["latency_ms"] = rows.generate_latency_ms / rows.new_tokens
    for col in ("latency_ms", "peak_memory_mb", "load_s"):
        rows = _with_ratio(rows, col, ["batch_size"])
    cols = ["variant", "kernel", "batch_size", "load_s", "load_s_x_fp16", "latency_ms", "latency_ms_x_fp16",
            "iqr_over_median", "peak_memory_mb", "peak_memory_mb_x_fp16"]
    return out + ["Ours, the same definition:\n", _md(rows.sort_values(["batch_size", "variant"])[cols])]


def _eager(bench: pd.DataFrame, prompt_len: int) -> pd.DataFrame:
    return bench[(bench.scenario == "generate") & (bench["mode"].fillna("eager") == "eager")
                 & (bench.prompt_len == prompt_len)]


def grid_section(bench: pd.DataFrame) -> list[str]:
    rows = _eager(bench, 30)
    rows = rows[rows.new_tokens == 30].copy()
    out = ["## Generate grid: prompt 30, 30 new tokens, KV cache on and off (tokens/s, x fp16)\n"]
    if rows.empty:
        return out + ["Not measured in this run.\n"]
    rows = _with_ratio(rows, "decode_tokens_per_s", ["batch_size", "use_cache"])
    rows["cell"] = [f"{v}, {'cache' if c else 'no cache'}" for v, c in zip(rows.variant, rows.use_cache)]
    rows["shown"] = [f"{s:.0f} ({r:.2f}x)" for s, r in zip(rows.decode_tokens_per_s, rows.decode_tokens_per_s_x_fp16)]
    return out + [_md(rows.pivot(index="cell", columns="batch_size", values="shown").fillna("").reset_index())]


def lengths_section(bench: pd.DataFrame) -> list[str]:
    rows = _eager(bench, 30)
    rows = rows[(rows.batch_size == 1) & (rows.use_cache == True)].copy()  # noqa: E712
    out = ["## Generation lengths at batch 1, prompt 30 (ms per generated token, x fp16)\n"]
    if rows.new_tokens.nunique() < 2:
        return out + ["Fewer than two generation lengths measured in this run.\n"]
    rows = _with_ratio(rows, "decode_ms_per_token", ["new_tokens"])
    rows["cell"] = [f"{m:.2f} ({r:.2f}x)" for m, r in zip(rows.decode_ms_per_token, rows.decode_ms_per_token_x_fp16)]
    rows["new_tokens"] = rows.new_tokens.astype(int)
    return out + [_md(rows.pivot(index="variant", columns="new_tokens", values="cell").fillna("").reset_index())]


def finetune_section(ft: pd.DataFrame | None) -> list[str]:
    out = ["## LoRA fine-tuning step (ms and peak MB, x the fp16 base)\n"]
    if ft is None or ft.empty:
        return out + ["Not measured in this run.\n"]
    base = ft[ft.base == BASELINE]
    if len(base):
        ft = ft.assign(step_x_fp16=ft.finetune_step_ms / base.finetune_step_ms.iloc[0],
                       memory_x_fp16=ft.finetune_peak_memory_mb / base.finetune_peak_memory_mb.iloc[0])
    cols = [c for c in ("base", "kernel", "finetune_step_ms", "finetune_step_iqr_over_median", "step_x_fp16",
                        "finetune_peak_memory_mb", "memory_x_fp16") if c in ft]
    return out + [_md(ft[cols])]


def _cell(bench: pd.DataFrame, variant: str, **where) -> readings.SpeedCell | None:
    rows = bench[bench.variant == variant]
    for k, v in where.items():
        rows = rows[(rows[k].fillna("eager") if k == "mode" else rows[k]) == v]
    if len(rows) != 1:
        return None
    r = rows.iloc[0]
    return readings.SpeedCell(float(r.decode_tokens_per_s), float(r.iqr_over_median), bool(r.noisy))


def _verdict(reading: str, expected: str) -> str:
    if reading == readings.NOT_READ:
        return "not read (spread above the limit)"
    if readings.is_same(reading):
        return "not confirmed: same within noise"
    return "agrees" if reading.startswith(expected) else "disagrees"


def claims_section(bench: pd.DataFrame, ft: pd.DataFrame | None) -> list[str]:
    """Each sentence of the blog checked on our cells: a GPTQ variant against bnb-nf4 (higher tokens/s
    is faster), readings.speed_reading deciding what the noise allows."""
    gptq = [v for v in dict.fromkeys(bench.variant) if family(v) == "gptq"]
    lines = []

    def versus(claim: str, where: dict, faster: str) -> None:
        bnb = _cell(bench, "bnb-nf4", **where)
        for g in gptq:
            mine = _cell(bench, g, **where)
            if mine is None or bnb is None:
                lines.append((claim, g, "not measured", ""))
                continue
            reading = readings.speed_reading(mine, bnb, smaller_is_better=False, names=(g, "bnb-nf4"))
            expected = f"{g} larger" if faster == "gptq" else f"{g} smaller"
            lines.append((claim, g, f"{mine.value / bnb.value:.2f}x bnb-nf4's tokens/s", _verdict(reading, expected)))

    eager30 = {"scenario": "generate", "mode": "eager", "prompt_len": 30, "use_cache": True}
    for b in sorted(_eager(bench, 30).batch_size.unique()):
        twice = ", 'twice as fast' at batch 4" if b == 4 else ""
        versus(f"GPTQ generates faster than bitsandbytes (batch {b}, 30 tokens{twice})",
               {**eager30, "new_tokens": 30, "batch_size": b}, "gptq")
    for b in sorted(bench[(bench.scenario == "generate") & (bench.prompt_len == 512)].batch_size.unique()):
        versus(f"13b: GPTQ and bitsandbytes equivalent, GPTQ slightly faster at large batch (batch {b}, 512 tokens)",
               {**eager30, "prompt_len": 512, "new_tokens": 512, "batch_size": b}, "gptq")
    no_cache = _eager(bench, 30)
    for _, r in no_cache[(no_cache.use_cache == False) & (no_cache.new_tokens == 30)].iterrows():  # noqa: E712
        on = _cell(bench, r.variant, **{**eager30, "new_tokens": r.new_tokens, "batch_size": r.batch_size})
        off = _cell(bench, r.variant, **{**eager30, "use_cache": False, "new_tokens": r.new_tokens,
                                         "batch_size": r.batch_size})
        if on is not None and off is not None:
            reading = readings.speed_reading(on, off, smaller_is_better=False, names=("cache", "no cache"))
            lines.append((f"generation is faster with the KV cache (batch {r.batch_size})", r.variant,
                          f"{on.value / off.value:.2f}x the tokens/s without", _verdict(reading, "cache larger")))
    lengths = _eager(bench, 30)
    for n in sorted(lengths[lengths.batch_size == 1].new_tokens.unique()):
        versus(f"GPTQ faster at any generation length ({int(n)} new tokens, batch 1)",
               {**eager30, "new_tokens": n, "batch_size": 1}, "gptq")
    if ft is not None and len(ft) and (ft.base == "bnb-nf4").any():
        bnb = ft[ft.base == "bnb-nf4"].iloc[0]
        for _, g in ft[ft.base.map(family) == "gptq"].iterrows():
            # step time: smaller is faster; each side's IQR/median as its band
            a = readings.SpeedCell(g.finetune_step_ms, g.finetune_step_iqr_over_median,
                                   g.finetune_step_iqr_over_median > tables.SPREAD_LIMIT)
            b = readings.SpeedCell(bnb.finetune_step_ms, bnb.finetune_step_iqr_over_median,
                                   bnb.finetune_step_iqr_over_median > tables.SPREAD_LIMIT)
            reading = readings.speed_reading(a, b, smaller_is_better=True, names=(g.base, "bnb-nf4"))
            lines.append(("bitsandbytes fine-tunes faster than GPTQ", g.base,
                          f"step {a.value / b.value:.2f}x bnb-nf4's", _verdict(reading, f"{g.base} larger")))
    out = ["## The blog's sentences on our cells\n"]
    if not lines:
        return out + ["No cell of this run answers them.\n"]
    return out + [_md(pd.DataFrame(lines, columns=["the blog says", "our variant", "ours", "verdict"]))]


def render(report_dir: Path) -> str:
    # a fine-tune-only run (config/llama2-7b-finetune.yaml) writes no benchmark table
    bench_path = report_dir / "benchmark.csv"
    bench = _ok(pd.read_csv(bench_path) if bench_path.exists()
                else pd.DataFrame(columns=["variant", "kernel", "load_s", *tables.KEEP_CELL]))
    ft_path = report_dir / "finetune.csv"
    ft = pd.read_csv(ft_path) if ft_path.exists() and ft_path.stat().st_size > 1 else None
    out = [f"# Against the blog comparison's A100 figures: {report_dir}\n",
           "Each side as ratios to its own fp16 row (x fp16); medians, with IQR/median as the spread.\n"]
    for section in (prefill_section(bench), generate512_section(bench), grid_section(bench), lengths_section(bench),
                    finetune_section(ft), claims_section(bench, ft)):
        out += section
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(render(Path(sys.argv[1])))
