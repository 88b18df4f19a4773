"""The markdown report: tables in the shape of the comparison, with provenance warnings."""
from __future__ import annotations

import pandas as pd

from quantbench.experiment import requantize_targets
from quantbench.report import base_model, readings, replicates, tables

PROVENANCE_KEYS = ("git_commit", "libraries", "device", "gpu", "cpu", "cpu_flags", "seed")
# where a job ran: the base model is built on the host's CPU in every run (dequantizing a GGUF, drawing
# random weights), so its record saying `cpu` in a CUDA run is the design, not a record from elsewhere
PLACEMENT_KEYS = ("device", "gpu")
HOST_STAGES = ("build_model",)


def run_value(record: dict, key: str):
    """A record's provenance value for the mixed-provenance check. A calibration replicate is seeded by
    its own draw (quantbench.calibration_draw) and keeps the run's seed as `config_seed`: that is the
    value which says whether two records come from one run."""
    if key == "seed" and "config_seed" in record.get("params", {}):
        return record["params"]["config_seed"]
    return record.get("provenance", {}).get(key)


def fmt_value(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-2 or abs(v) >= 1e5 else f"{v:,.{digits if abs(v) < 10 else 1}f}"
    return str(v)


def fmt(df: pd.DataFrame, digits: int = 3) -> str:
    if df.empty:
        return "_(no rows)_\n"
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt_value(v, digits) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def noise_marked(quality: pd.DataFrame) -> pd.DataFrame:
    """The quality table as the report shows it: a delta inside the noise of its difference to the
    baseline carries `≈` (no finding), with the noise beside it; the CSV keeps the raw columns."""
    # records older than the noise columns leave them empty: no column of dashes
    shown = quality.dropna(axis=1, how="all").copy()
    if "within_noise" not in shown:
        return shown
    reading = quality["reading"] if "reading" in quality else pd.Series(None, index=quality.index)
    delta = [f"{fmt_value(d)} ≈" + (" edge" if r == readings.AT_EDGE else "") if inside is True else fmt_value(d)
             for d, inside, r in zip(quality.delta_average_points, quality.within_noise, reading)]
    shown["delta_average_points"] = delta
    shown["delta_noise_points"] = [fmt_value(n) if pd.notna(n) else "baseline" for n in quality.delta_noise_points]
    # the reading is what `≈` says in words, and the noise's kind is said above the table
    hidden = [c for c in ("within_noise", "reading", "delta_noise_kind") if c in shown]
    return shown.drop(columns=hidden).rename(columns={"delta_noise_points": "delta_noise_95"})


def provenance_warnings(records: list[dict], listed: int = 6) -> list[str]:
    """One line per provenance field whose value differs between records: every value whole (at most
    `listed`, then how many more), and of a mapping (the libraries) only the entries that differ."""
    warnings = []
    for key in PROVENANCE_KEYS:
        raw = [run_value(r, key) for r in records
               if not (key in PLACEMENT_KEYS and r.get("stage") in HOST_STAGES)]
        values = sorted({str(v) for v in raw})
        if len(values) < 2:
            continue
        if all(isinstance(v, dict) for v in raw):
            names = sorted({k for v in raw for k in v})
            differ = {k: sorted({str(v.get(k)) for v in raw}) for k in names}
            shown = "; ".join(f"{k} {' / '.join(vs)}" for k, vs in differ.items() if len(vs) > 1)
            warnings.append(f"records differ in `{key}` ({len(values)} combinations; {shown})")
            continue
        more = f"; and {len(values) - listed} more" if len(values) > listed else ""
        warnings.append(f"records differ in `{key}` ({len(values)} values: {'; '.join(values[:listed])}{more})")
    return warnings


def recipe_section(summary: pd.DataFrame, quality: pd.DataFrame, recipes: list[dict]) -> str:
    """Does QLoRA on bnb -> merge -> GPTQ pay off against serving the bnb model with its adapter?"""
    out = []
    for r in recipes:
        trained = f"{r['finetune_on']}+lora"
        targets = requantize_targets(r)
        names = [trained] + [f"{trained}+merge-{k}" for k in r.get("merge_into", ["fp", "dequant"])]
        names += [f"{trained}+merge-{k}+{rq}" for k in r.get("merge_into", ["fp", "dequant"]) for rq in targets]
        cols = ["variant", "bits_per_weight", "weights_memory_mb", "body_mb", "embedding_head_mb",
                "decode_tokens_per_s", "prefill_ms_per_token", "Average", "kl_mean", "top1_agreement"]
        rows = summary[summary.variant.isin(names)]
        cols = [c for c in cols if c not in tables.WEIGHTS_SPLIT or (c in rows and rows[c].notna().any())]
        if rows.empty:
            continue
        if "reference" in quality:
            rows = rows.assign(reference=rows.variant.map(quality.set_index("variant")["reference"]))
        out.append(f"**{trained} → merge → {', '.join(targets) or '(no re-quantization)'}**: "
                   f"KL and top-1 agreement are against `{trained}` (the trained model, served unmerged), "
                   "so they measure what merging and re-quantizing lose of the fine-tune.\n")
        out.append(fmt(rows[[c for c in cols + ["reference"] if c in rows.columns]]))
    if out:
        return "\n".join(out)
    return ("_(recipe configured, but none of its variants has records here)_\n" if recipes
            else "_(no recipe configured)_\n")


def render(inputs, quant: pd.DataFrame, plots: list[tuple[str, str, str]]) -> str:
    """The report: `inputs` (quantbench.report.figures.Inputs: the records, the tables built from
    them and the report params), the quantize table and the figures drawn (name, file, caption).
    Each section is a function of what it shows; together they are the report, in this order."""
    p = inputs.params
    parts = header(p["title"], inputs.records)
    base = base_model.section(inputs.records)
    if base:
        parts.append(base)
    parts += skipped_section(p["skipped"])
    if not inputs.bench.empty:  # records collected off a quality-only run have no speed to show
        parts += inference_section(inputs.summary, inputs.bench, p["generate"])
        parts += speed_readings_section(inputs.bench, p.get("baseline"))
        parts += throughput_section(inputs.bench)
        parts += decode_modes_section(inputs.records)
        parts += cell_outcomes(inputs.bench)
    parts += finetune_section(inputs.finetune)
    parts += quality_section(inputs.quality)
    parts += replicates_section(inputs.replicates)
    if p.get("kv_cache"):
        parts += kv_cache_link()
    parts.append("## The recipe: QLoRA on bitsandbytes, merge, re-quantize with GPTQ\n")
    parts.append(recipe_section(inputs.summary, inputs.quality, p["recipes"]))
    parts += sensitivity_section(inputs)
    parts += quantize_section(quant)
    parts += figures_section(plots)
    return "\n".join(parts)


def header(title: str, records: list[dict]) -> list[str]:
    """Title, provenance line, and a warning when the records' provenance differs."""
    warnings = provenance_warnings(records)
    prov = records[0]["provenance"] if records else {}
    parts = [f"# quantbench report: {title}\n"]
    parts.append(f"{len(records)} result records; device `{prov.get('device')}` "
                 f"({prov.get('gpu') or prov.get('cpu')}); quantbench commit `{prov.get('git_commit')}`; "
                 f"torch {prov.get('libraries', {}).get('torch')}, transformers "
                 f"{prov.get('libraries', {}).get('transformers')}, bitsandbytes "
                 f"{prov.get('libraries', {}).get('bitsandbytes')}, gptqmodel "
                 f"{prov.get('libraries', {}).get('gptqmodel')}.\n")
    if warnings:
        parts.append("> **Warning: mixed provenance.** " + " ".join(f"The {w}." for w in warnings) + "\n")
    return parts


def skipped_section(skipped: dict[str, str]) -> list[str]:
    if not skipped:
        return []
    return ["## Skipped methods\n", fmt(pd.DataFrame([{"method": m, "reason": why} for m, why in skipped.items()]))]


def inference_section(summary: pd.DataFrame, bench: pd.DataFrame, gen_spec: dict) -> list[str]:
    parts = []
    if not bench.empty and "exclusive" in bench.columns and not bench.exclusive.all():
        parts.append("> Benchmarks ran beside other jobs (`benchmark.exclusive: false`): timings are a smoke "
                     "test of the harness, not a measurement to quote.\n")
    parts.append("## Inference (batch size 1)\n")
    parts.append(f"Prefill: one forward pass over the prompt; generate: greedy, {max(gen_spec['new_tokens'])} "
                 "new tokens, KV cache on, eager. Medians; the full grid with spreads is in benchmark.csv.\n")
    cols = ["variant", "kernel", "bits_per_weight", "load_s", "prefill_ms_per_token", "decode_ms_per_token",
            "decode_tokens_per_s", "weights_memory_mb", "body_mb", "embedding_head_mb", "peak_memory_mb"]
    split = [c for c in tables.WEIGHTS_SPLIT if c in summary.columns and summary[c].notna().any()]
    if split:
        parts.append("weights_memory_mb = body_mb (the decoder layers and norms) + embedding_head_mb (the input "
                     "embedding table and the output head, once when tied); – where a record predates the split.\n")
    # records older than the split leave its columns empty: no column of dashes
    cols = [c for c in cols if c in summary.columns and (c not in tables.WEIGHTS_SPLIT or c in split)]
    unmeasured = (sorted(set(bench.variant[bench.peak_memory_note.notna()]))
                  if "peak_memory_note" in bench.columns else [])
    if unmeasured:
        parts.append(f"peak_memory_mb – for {', '.join(unmeasured)}: not measured (llama.cpp on a CUDA run holds its "
                     "buffers outside torch's allocator; each record's peak_memory_note says so).\n")
    parts.append(fmt(summary[cols]))
    return parts


def speed_readings(bench: pd.DataFrame, baseline: str, floor: float = 0.0) -> pd.DataFrame:
    """Each variant's batch-1 eager decode against the baseline's, in readings.speed_reading's words:
    a cell above the spread limit is not read; the noise of a cell is the larger of its own spread and
    `floor` (tables.job_spread)."""
    rows = []

    def cell_of(variant):
        return tables.speed_cell(bench, variant, "generate", 1, "decode_tokens_per_s", floor=floor)

    try:
        base = cell_of(baseline)
    except KeyError:
        return pd.DataFrame()
    for variant in dict.fromkeys(bench.variant):
        if variant == baseline:
            continue
        try:
            cell = cell_of(variant)
        except KeyError:  # not measured (unsupported, out of memory)
            continue
        rows.append({"variant": variant, "decode_tokens_per_s": cell.value, "iqr_over_median": cell.spread,
                     f"against {baseline}": readings.speed_reading(cell, base, smaller_is_better=False,
                                                                   names=(variant, baseline))})
    return pd.DataFrame(rows)


def speed_readings_section(bench: pd.DataFrame, baseline: str | None) -> list[str]:
    if not baseline or bench.empty:
        return []
    floor, twins = tables.job_spread(bench, baseline)
    table = speed_readings(bench, baseline, floor)
    if table.empty:
        return []
    between = (f"the spread between separate jobs of the same computation ({', '.join(twins)}: "
               f"{floor:.0%} of their median)" if len(twins) > 1 else "no second job of the same computation")
    base_spread = tables.speed_cell(bench, baseline, "generate", 1, "decode_tokens_per_s").spread
    return [f"Decode at batch 1 against `{baseline}`. The noise of each cell is the larger of its own spread "
            f"(IQR/median) and {between}; a comparison is read only where both cells' own spreads stayed "
            f"inside the limit (`{baseline}`'s: {base_spread:.3f}).\n",
            fmt(table)]


def throughput_section(bench: pd.DataFrame) -> list[str]:
    gen = bench[(bench.scenario == "generate") & (bench.outcome == "ok")]
    if not len(gen):
        return []
    pivot = gen.pivot_table(index="variant", columns=["mode", "use_cache", "new_tokens", "batch_size"],
                            values="decode_tokens_per_s", sort=False)
    pivot.columns = [f"{m} cache={'on' if c else 'off'} n={int(n)} bs={int(b)}" for m, c, n, b in pivot.columns]
    return ["## Generate throughput grid (decode tokens/s)\n", fmt(pivot.reset_index())]


def decode_modes_section(records: list[dict]) -> list[str]:
    fast = tables.fast_decode_table(records)
    if not len(fast) or not (fast["mode"] != "eager").any():
        return []
    return ["## Decode modes\n",
            "Decode step time (CUDA events between the first and last decode step), the share of "
            "the bandwidth roofline and the GPU energy per generated token (NVML, the whole call "
            "over its new tokens), per mode and batch size; `token_check`: the mode's greedy tokens against eager "
            "generate (random weights diverge late from rounding; a difference from token 1 with no sequence "
            "identical is marked suspect: this check cannot tell it from a step that computes something "
            "else, and its timing is not a measurement to quote until a check on real weights passes).\n",
            fmt(fast)]


def cell_outcomes(bench: pd.DataFrame) -> list[str]:
    """The cells that ran out of memory, kept a wide spread, or could not run as asked."""
    parts = []
    ooms = bench[bench.outcome == "oom"]
    if len(ooms):
        parts.append(f"{len(ooms)} cells ran out of memory: "
                     + ", ".join(f"{r.variant} {r.scenario} bs={r.batch_size}" for r in ooms.itertuples()) + "\n")
    noisy = tables.noisy_cells(bench)
    if noisy:
        parts.append(f"{len(noisy)} timed cells kept a spread (IQR/median of the repeats) above "
                     f"{tables.SPREAD_LIMIT:.0%}; their medians stand with that spread, and a difference "
                     "smaller than it is no finding: " + "; ".join(noisy[:12])
                     + (f"; and {len(noisy) - 12} more (benchmark.csv, `iqr_over_median`)" if len(noisy) > 12 else "")
                     + "\n")
    unsupported = bench[bench.outcome == "unsupported"]
    if len(unsupported):
        # e.g. a GGUF variant's cells with the KV cache off (llama.cpp always decodes with it)
        parts.append(f"{len(unsupported)} cells could not run as asked and were not measured: " + "; ".join(
            f"{v} ({', '.join(sorted({f'{r.scenario} bs={r.batch_size}' for r in g.itertuples()}))}: "
            f"{g.error.iloc[0] if 'error' in g else 'unsupported'})" for v, g in unsupported.groupby("variant")) + "\n")
    return parts


def finetune_section(finetune: pd.DataFrame) -> list[str]:
    ft_cols = ["base", "kernel", "finetune_step_ms", "finetune_step_iqr_over_median", "finetune_tokens_per_s",
               "finetune_peak_memory_mb", "trainable_parameters", "loss_first", "loss_last"]
    return ["## Fine-tuning (LoRA)\n",
            fmt(finetune[[c for c in ft_cols if c in finetune.columns]]) if not finetune.empty else "_(none)_\n"]


def noise_kind_note(quality: pd.DataFrame) -> str:
    """Which noise the Δ column carries: paired over the same items where both sides have per-item
    files, else the unpaired one, said by name so that a reader knows which rows are which."""
    if "delta_noise_kind" not in quality:
        return ""
    kinds = quality.set_index("variant").delta_noise_kind.dropna()
    paired_rows = sorted(kinds[kinds == "paired"].index)
    unpaired = "the 95% half-width of a difference of two independent means (unpaired)"
    if not paired_rows:
        return f" {unpaired}: there are no per-item results here."
    both = ("a paired bootstrap over the same items (95% interval in `delta_ci95_low`–`delta_ci95_high`, "
            "its half-width shown; flips: items right in the baseline and wrong here, and the other way)")
    with_runs = sorted(kinds[kinds == replicates.KIND].index)
    runs = (f"; for {', '.join(with_runs)}, a method with calibration replicates, that bootstrap with its runs "
            "resampled too (the run-inclusive interval, Calibration replicates below)" if with_runs else "")
    rest = sorted(kinds[~kinds.isin(["paired", replicates.KIND])].index)
    if not rest:
        return f" {both}{runs}."
    return (f" {both} for {', '.join(paired_rows)}{runs}; {unpaired} for the rows without per-item results "
            f"({', '.join(rest)}).")


def quality_section(quality: pd.DataFrame) -> list[str]:
    return ["## Quality\n",
            "Task scores in points (0-100); `delta_average_points` against the baseline; KL(reference ‖ variant) "
            "in nats per token, top-1 agreement and perplexity ratio against each row's `reference`."
            + (" `≈` marks a delta whose 95% interval holds zero (`delta_noise_95`, the noise of its difference "
               "to the baseline; readings.compare's \"same within noise\"): no finding; `≈ edge`, one whose "
               "paired interval ends at zero, at the very edge of the noise. The noise is"
               + noise_kind_note(quality) if "within_noise" in quality else "")
            + (" `p_mcnemar`: McNemar's exact test of the flips against the baseline; `p_holm`: the same with "
               "Holm's correction over every variant tested against the baseline here, and `finding_holm` where it "
               "stays below 0.05 (the `≈` marks read each interval alone)." if "p_holm" in quality else "") + "\n",
            fmt(noise_marked(quality))]


def replicates_section(runs: pd.DataFrame) -> list[str]:
    """The runs of each method with calibration replicates (replicates.csv); the quality table holds one
    row per method, with the spread over these runs and the run-inclusive interval."""
    if runs.empty:
        return []
    cols = ["method", "replicate", "calibration_seed", "calibration_texts_sha256", "delta_average_points",
            "delta_ci95_low", "delta_ci95_high", "kl_mean", "top1_agreement", "perplexity_ratio"]
    return ["### Calibration replicates\n",
            "Each calibrated method with `replicates: N` was quantized from N calibration draws (a seed and a sample "
            "of the calibration texts each; replicate 1 is the method's own row) and evaluated. Its row in the "
            "quality table gives the spread over these runs (`*_runs_sd`, `*_runs_min`, `*_runs_max`) and reads "
            "its Δ by the run-inclusive interval (`delta_noise_kind` \"paired, runs included\": runs and items "
            "resampled together, `delta_runs_mean_points` its centre, `p_runs` its test, the one Holm's family "
            "counts); each run's own single-run paired interval is here.\n",
            fmt(runs[[c for c in cols if c in runs.columns]])]


def kv_cache_link() -> list[str]:
    return ["## KV-cache quantization by context length\n",
            "Quality per context length and position bucket, bytes per token and decode speed of each "
            "quantized KV cache: [kv_cache.md](kv_cache.md) (written by the kv_report job).\n"]


def quantize_section(quant: pd.DataFrame) -> list[str]:
    if quant.empty:
        return []
    qcols = ["variant", "backend", "bits_per_weight", "quantize_s", "size_on_disk_mb"]
    return ["## Quantization cost\n", fmt(quant[[c for c in qcols if c in quant.columns]])]


def figures_section(plots: list[tuple[str, str, str]]) -> list[str]:
    return ["## Figures\n"] + [f"![{name}]({path})\n\n_{caption}_\n" for name, path, caption in plots]


def sensitivity_section(inputs) -> list[str]:
    """Which layers hurt (ranking per family) and whether a measured allocation of bits beats the
    k-quant placement and the uniform widths at the size it stores."""
    from quantbench.report import sensitivity_tables as st

    sens = st.sensitivity_table(inputs.records)
    if sens.empty:
        return []
    out = ["## Which layers hurt: sensitivity and mixed precision\n",
           "KL against the baseline with one group of a method's quantized layers moved into the otherwise "
           "full-precision baseline, on the first held-out windows (`sensitivity.csv` has every group; "
           "`all` is every layer at once). Most damaging groups per family:\n"]
    for (method, family), g in sens[sens.family != "all"].groupby(["method", "family"], sort=False):
        top = g.sort_values("rank").head(5)
        total = sens[(sens.method == method) & (sens.family == "all")].kl_mean
        listed = ", ".join(f"{r.group} {r.kl_mean:.3g} ± {r.kl_mean_ci95:.2g}" for r in top.itertuples())
        out.append(f"- `{method}`, by {family} (of {len(g)}; all layers: "
                   f"{total.iloc[0]:.3g}): {listed}" if len(total) else f"- `{method}`, by {family}: {listed}")
    table = st.mix_comparison(inputs.records, inputs.summary, inputs.quality)
    if not table.empty:
        out.append("\nMixed precision beside uniform widths and llama.cpp's k-quant mixes, sizes as stored in the "
                   "files (block matrices only, scales and zero points included):\n")
        out.append(fmt(table, 4))
        tasks = [e["task"] for e in tables.suite_entries(inputs.records) if e.get("higher_is_better", True)]
        out += [f"- {line}" for line in st.mix_readings(table, inputs.items, tasks)]
    return out + [""]
