"""Tidy tables from result records: one row per measurement, units in the column names."""
from __future__ import annotations

import pandas as pd

from quantbench.experiment import parse_variant
from quantbench.report import multiple, paired, readings, replicates
from quantbench.suites import SUITES, task_label

ALPHA = 0.05  # the family-wise error rate the Holm-corrected findings keep

KEEP_CELL = ["scenario", "mode", "batch_size", "prompt_len", "new_tokens", "use_cache", "outcome",
             "median_s", "p25_s", "p75_s", "iqr_over_median", "repeats", "peak_memory_mb",
             "peak_reserved_mb", "prefill_latency_ms", "prefill_ms_per_token", "prefill_tokens_per_s",
             "generate_latency_ms", "decode_ms_per_token", "decode_tokens_per_s",
             "decode_step_ms", "decode_bytes_per_step_mb", "decode_roofline_pct", "attempts",
             "spread_above_limit", "energy_j_per_call", "avg_power_w", "energy_j_per_token",
             "energy_j_per_prompt_token", "energy_error", "error"]


WEIGHTS_SPLIT = ["body_mb", "embedding_head_mb"]  # quantbench.memory.weights_split_mb


def _by_stage(records: list[dict], stage: str) -> list[dict]:
    return [r for r in records if r["stage"] == stage]


def _pipeline(name: str) -> str:
    return parse_variant(name).pipeline


def quantize_table(records: list[dict]) -> pd.DataFrame:
    rows = [{"variant": r["subject"], "method": r["params"]["method"]["name"],
             "backend": r["params"]["method"]["backend"], **{k: v for k, v in r["metrics"].items()}}
            for r in _by_stage(records, "quantize")]
    return pd.DataFrame(rows)


def finetune_table(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in _by_stage(records, "finetune"):
        m = r["metrics"]
        rows.append({"variant": r["subject"], "base": r["subject"].removesuffix("+lora"),
                     "kernel": r.get("kernel"), "steps": len(m["loss_curve"]),
                     **{k: v for k, v in m.items() if not isinstance(v, list)}})
    return pd.DataFrame(rows)


def loss_curves(records: list[dict]) -> dict[str, list[float]]:
    return {r["subject"]: r["metrics"]["loss_curve"] for r in _by_stage(records, "finetune")}


def benchmark_table(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in _by_stage(records, "benchmark"):
        head = {"variant": r["subject"], "pipeline": _pipeline(r["subject"]), "kernel": r.get("kernel"),
                "random_weights": r["params"].get("random_weights", False),
                "exclusive": r["params"]["benchmark"].get("exclusive", True),
                "load_s": r["metrics"]["load_s"], "weights_memory_mb": r["metrics"]["weights_memory_mb"],
                # records from before the split lack these: left empty, not estimated
                **{k: r["metrics"].get(k, float("nan")) for k in WEIGHTS_SPLIT}}
        for cell in r["cells"]:
            # why a cell has no peak memory (quantbench.memory.mark_unmeasured): a column only where one does
            note = {"peak_memory_note": cell["peak_memory_note"]} if "peak_memory_note" in cell else {}
            rows.append({**head, **{k: cell.get(k) for k in KEEP_CELL}, **note})
    return pd.DataFrame(rows)


SPREAD_LIMIT = 0.05  # benchmark.spread_limit's default, for cells measured before it was recorded


def noisy_mask(bench: pd.DataFrame) -> pd.Series:
    """True for each measured cell whose spread stayed above the limit: flagged by the benchmark, or,
    for a record from before the flag, an IQR/median above SPREAD_LIMIT. A speed reading may not come
    from such a cell (readings.speed_reading)."""
    if bench.empty or "iqr_over_median" not in bench:
        return pd.Series(False, index=bench.index, dtype=bool)
    flagged = (bench.spread_above_limit if "spread_above_limit" in bench
               else pd.Series(float("nan"), index=bench.index))
    noisy = (flagged == True) | (flagged.isna() & (bench.iqr_over_median > SPREAD_LIMIT))  # noqa: E712
    return noisy & (bench.outcome == "ok")


def noisy_cells(bench: pd.DataFrame) -> list[str]:
    """Timed cells whose spread (IQR/median) stayed above the limit, each with why it is still
    quoted: re-measured and still above (the machine's noise), or measured once, by a benchmark
    that did not re-measure yet."""
    if bench.empty or "iqr_over_median" not in bench:
        return []
    noisy = bench[noisy_mask(bench)]
    out = []
    for r in noisy.itertuples():
        where = f"{r.variant} {r.scenario}" + (f" {r.mode}" if isinstance(getattr(r, "mode", None), str) else "") \
            + f" bs={int(r.batch_size)}"
        attempts = getattr(r, "attempts", float("nan"))
        if attempts != attempts:  # NaN: a record from before spread retries
            why = "measured once, before the benchmark re-measured noisy cells"
        elif attempts > 1:
            why = f"after {int(attempts)} measurements"
        else:
            why = "measured once: no re-measuring configured"
        out.append(f"{where}: {r.iqr_over_median:.2f} ({why})")
    return out


def token_check(record: dict, mode: str, batch_size: int = 1) -> str | None:
    """The verdict on a static-cache decoder's greedy tokens against eager generate at one batch
    size (records made before checks covered every batch size hold batch 1 only)."""
    for c in record.get("fast_vs_eager", record.get("compiled_vs_eager", [])):
        if c.get("mode", "compiled") != mode or c.get("batch_size", 1) != batch_size:
            continue
        if c.get("error"):
            return "check failed: " + c["error"].splitlines()[0][:80]
        if c.get("identical"):
            return f"identical over {c['new_tokens']} tokens"
        at = c.get("first_difference_at")
        if at is None or at > 1:
            return f"differs from token {at}"
        # The first decode step differs. In every sequence, that is what a step computing something
        # else looks like (exllama_v2's captured graph did this); where some sequences stay identical
        # throughout, the step computes what eager does for them and near-tied logits flipped others.
        same, batch = c.get("sequences_identical"), c.get("batch_size", 1)
        if same:
            return f"differs from token {at} in some sequences ({same} of {batch} identical)"
        return f"differs from token {at} (suspect)"
    return "not checked"


def fast_decode_table(records: list[dict]) -> pd.DataFrame:
    """Decode in every mode and batch size at its longest generation: step time, roofline, spread,
    energy, and whether the fast loop's tokens match eager generate."""
    rows = []
    for r in _by_stage(records, "benchmark"):
        cells = [c for c in r["cells"] if c["scenario"] == "generate" and c.get("use_cache", True)]
        for mode, bs in dict.fromkeys((c.get("mode", "eager"), c["batch_size"]) for c in cells):
            if mode == "eager" and bs != 1:
                continue  # eager beyond batch 1 is the comparison's grid, in its own table
            mine = [c for c in cells if c.get("mode", "eager") == mode and c["batch_size"] == bs]
            cell = max(mine, key=lambda c: c["new_tokens"])
            rows.append({"variant": r["subject"], "kernel": r.get("kernel"), "mode": mode, "batch_size": bs,
                         "new_tokens": cell["new_tokens"], "outcome": cell["outcome"],
                         "decode_step_ms": cell.get("decode_step_ms"),
                         "decode_tokens_per_s": cell.get("decode_tokens_per_s"),
                         "decode_roofline_pct": cell.get("decode_roofline_pct"),
                         "iqr_over_median": cell.get("decode_step_iqr_over_median", cell.get("iqr_over_median")),
                         "energy_j_per_token": cell.get("energy_j_per_token"),
                         "avg_power_w": cell.get("avg_power_w"),
                         "token_check": token_check(r, mode, bs) if mode != "eager" else None,
                         "error": (cell.get("error") or cell.get("energy_error") or "").splitlines()[0][:80]
                         if cell.get("error") or cell.get("energy_error") else None})
    return pd.DataFrame(rows)


def suite_entries(records: list[dict]) -> list[dict]:
    suites = {r["params"]["evaluate"]["suite"] for r in _by_stage(records, "evaluate")}
    return [e for s in sorted(suites) for e in SUITES[s]]


def quality_table(records: list[dict], baseline: str, items: dict[str, dict] | None = None,
                  fold_replicates: bool = True) -> pd.DataFrame:
    """Leaderboard-shaped: variant, Average (points), each task (points), distribution metrics.

    items: per-item files by variant (paired.items_beside). A variant that has one, against a
    baseline that has one, gets the paired bootstrap interval of its Δ Average and its flips;
    every other row keeps the unpaired noise (`delta_noise_kind` says which).

    A method with calibration replicates (`<method>~r<k>` rows) keeps one row (fold_replicates): its
    own figures, the spread over its runs, and the run-inclusive interval (report.replicates) in place
    of the single-run one, which its reading, the Holm family and the figures then use; the
    replicates' rows are left out (replicates.replicate_table lists them)."""
    entries = suite_entries(records)
    scored = [e for e in entries if e.get("higher_is_better", True)]
    rows = []
    for r in _by_stage(records, "evaluate"):
        m = r["metrics"]
        row = {"variant": r["subject"], "reference": r.get("reference")}
        errs = m.get("tasks_stderr") or {}
        for e in scored:
            value, se = m["tasks"].get(e["task"]), errs.get(e["task"])
            row[task_label(e)] = None if value is None else 100 * value
            row[f"{task_label(e)}_se"] = None if se is None else 100 * se
        present = [row[task_label(e)] for e in scored if row[task_label(e)] is not None]
        row["Average"] = sum(present) / len(present) if present else None
        ses = [row[f"{task_label(e)}_se"] for e in scored]
        # tasks are independent samples: the mean's standard error adds their variances
        row["Average_se"] = (sum(x * x for x in ses) ** 0.5 / len(ses)) if ses and None not in ses else None
        for e in entries:
            if not e.get("higher_is_better", True):
                row[f"{task_label(e)}_{e['metric'].split(',')[0]}"] = m["tasks"].get(e["task"])
        for k in ("kl_mean", "kl_mean_ci95", "kl_p99", "top1_agreement", "top1_agreement_ci95", "perplexity",
                  "perplexity_ratio", "kl_median", "kl_p99_9", "kl_max", "delta_p_rms", "ln_perplexity_ratio",
                  "ln_perplexity_ratio_ci95"):
            row[k] = m.get(k)
        for k in ("kl_p99", "kl_p99_9", "delta_p_rms"):  # the scoreboard's intervals, as low–high
            ci = m.get(f"{k}_ci95")
            row[f"{k}_ci95"] = f"{ci[0]:.4g}–{ci[1]:.4g}" if ci else None
        ci = m.get("perplexity_ratio_ci95")
        row["perplexity_ratio_ci95"] = f"{ci[0]:.4f}–{ci[1]:.4f}" if ci else None
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    cols = ["variant", "Average"] + [task_label(e) for e in scored]
    df = df[cols + [c for c in df.columns if c not in cols]]
    base = df.loc[df.variant == baseline, ["Average", "Average_se"]]
    df.insert(2, "delta_average_points", df["Average"] - base["Average"].iloc[0] if len(base) else None)
    paired_rows = _paired_deltas(df, baseline, items or {}, [e["task"] for e in scored]) if len(base) else {}
    run_rows = {}  # row index of a method with replicates -> its run-inclusive result
    if fold_replicates:
        df, paired_rows, run_rows = _fold_replicates(df, paired_rows, items or {}, baseline,
                                                     [e["task"] for e in scored])
    if len(base) and (base["Average_se"].notna().all() or paired_rows):
        # unpaired: 95% half-width of a difference of two independent means; a delta inside it is no finding
        unpaired = 1.959964 * (df["Average_se"] ** 2 + base["Average_se"].iloc[0] ** 2) ** 0.5
        low = df.delta_average_points - unpaired
        high = df.delta_average_points + unpaired
        kind = pd.Series("unpaired", index=df.index).where(unpaired.notna())
        for i, res in paired_rows.items():
            low.at[i], high.at[i], kind.at[i] = res["low"], res["high"], "paired"
        # a method's reading is of its runs: their mean, within the interval that holds their spread
        center = df.delta_average_points.copy()
        for i, res in run_rows.items():
            low.at[i], high.at[i], kind.at[i], center.at[i] = res["low"], res["high"], replicates.KIND, res["delta"]
        is_base = df.variant == baseline
        noise = ((high - low) / 2).where(~is_base)
        df.insert(3, "delta_noise_points", noise)
        reading = [None if b or pd.isna(n) else readings.compare((d, lo, hi), (0.0, 0.0, 0.0), smaller_is_better=False,
                                                                 names=(v, baseline), paired=(lo, hi))
                   for v, b, d, n, lo, hi in zip(df.variant, is_base, center, noise, low, high)]
        df.insert(4, "within_noise", [None if r is None else readings.is_same(r) for r in reading])
        df.insert(5, "delta_noise_kind", kind.where(~is_base))
        df.insert(6, "reading", reading)
        if paired_rows:
            df["delta_ci95_low"] = low.where(~is_base)
            df["delta_ci95_high"] = high.where(~is_base)
            df["flips_right_to_wrong"] = [paired_rows[i]["right_to_wrong"] if i in paired_rows else None
                                          for i in df.index]
            df["flips_wrong_to_right"] = [paired_rows[i]["wrong_to_right"] if i in paired_rows else None
                                          for i in df.index]
            # every paired row is one more test against the baseline: Holm's correction over them all
            mcnemar = {i: multiple.mcnemar_exact_p(r["right_to_wrong"], r["wrong_to_right"])
                       for i, r in paired_rows.items()}
            # a method with replicates is one test, of its runs: the run-inclusive bootstrap's p-value
            raw = {**mcnemar, **{i: r["p"] for i, r in run_rows.items()}}
            adjusted = multiple.holm(raw)
            df["p_mcnemar"] = [mcnemar.get(i) for i in df.index]
            if run_rows:
                df["p_runs"] = [run_rows[i]["p"] if i in run_rows else None for i in df.index]
            df["p_holm"] = [adjusted.get(i) for i in df.index]
            df["finding_holm"] = [adjusted[i] < ALPHA if i in adjusted else None for i in df.index]
    return df


def _fold_replicates(df: pd.DataFrame, paired_rows: dict[int, dict], items: dict[str, dict], baseline: str,
                     tasks: list[str]) -> tuple[pd.DataFrame, dict[int, dict], dict[int, dict]]:
    """The quality table with each method's replicate rows folded into its own: spread columns, the
    run-inclusive KL half-width and task interval (where every run and the baseline have per-item files)."""
    groups = replicates.runs_of(df.variant)
    if not groups:
        return df, paired_rows, {}
    df = df.copy()
    run_rows = {}
    for method, runs in groups.items():
        i = df.index[df.variant == method][0]
        for k, v in replicates.spread(df, runs).items():
            df.loc[i, k] = v
        hw = replicates.kl_half_width(df, runs)
        if hw is not None:
            df.loc[i, "kl_mean_ci95_runs"] = hw
        if baseline in items and all(r in items for r in runs):
            res = replicates.compare_runs([items[r] for r in runs], items[baseline], tasks)
            if res is not None:
                run_rows[i] = res
                df.loc[i, "delta_runs_mean_points"] = res["delta"]
    keep = ~df.variant.map(replicates.is_replicate)
    return df[keep], {i: r for i, r in paired_rows.items() if keep.loc[i]}, run_rows


def _paired_deltas(df: pd.DataFrame, baseline: str, items: dict[str, dict], tasks: list[str]) -> dict[int, dict]:
    """Row index -> paired bootstrap result, for each variant with a per-item file when the baseline has one."""
    if baseline not in items:
        return {}
    out = {}
    for i, v in zip(df.index, df.variant):
        if v != baseline and v in items:
            res = paired.compare_items(items[v], items[baseline], tasks)
            if res is not None:
                out[i] = res
    return out


def summary_table(bench: pd.DataFrame, quality: pd.DataFrame, bits: dict[str, float],
                  gen_spec: dict) -> pd.DataFrame:
    """One row per variant in the comparison's shape, at batch size 1. Records collected without any
    benchmark (a quality-only run) still get a row per evaluated variant, without speed columns."""
    if bench.empty:
        if quality.empty:
            return pd.DataFrame()
        df = quality[["variant", "Average", "delta_average_points", "kl_mean", "top1_agreement"]].copy()
        df.insert(1, "bits_per_weight", df.variant.map(bits))
        df.insert(2, "finetuned", [parse_variant(v).lora for v in df.variant])
        return df
    longest = max(gen_spec["new_tokens"])
    rows = []
    for variant, g in bench.groupby("variant", sort=False):
        pre = g[(g.scenario == "prefill") & (g.batch_size == 1)]
        dec = g[(g.scenario == "generate") & (g.batch_size == 1) & (g.new_tokens == longest)
                & (g.use_cache == True) & (g["mode"].fillna("eager") == "eager")]  # noqa: E712
        ok = g[g.outcome == "ok"]
        row = {"variant": variant, "pipeline": g.pipeline.iloc[0], "kernel": g.kernel.iloc[0],
               "load_s": g.load_s.iloc[0], "weights_memory_mb": g.weights_memory_mb.iloc[0],
               **{k: g[k].iloc[0] for k in WEIGHTS_SPLIT},
               "prefill_ms_per_token": pre.prefill_ms_per_token.iloc[0] if len(pre) else None,
               "decode_ms_per_token": dec.decode_ms_per_token.iloc[0] if len(dec) else None,
               "decode_tokens_per_s": dec.decode_tokens_per_s.iloc[0] if len(dec) else None,
               "peak_memory_mb": ok.peak_memory_mb.max() if len(ok) else None}
        rows.append(row)
    df = pd.DataFrame(rows)
    df.insert(3, "bits_per_weight", df.variant.map(bits))
    df["finetuned"] = [parse_variant(v).lora for v in df.variant]
    if not quality.empty:
        df = df.merge(quality[["variant", "Average", "delta_average_points", "kl_mean", "top1_agreement"]],
                      on="variant", how="left")
    return df


def speed_cell(bench: pd.DataFrame, variant: str, scenario: str, batch_size: int, column: str,
               mode: str = "eager", floor: float = 0.0) -> readings.SpeedCell:
    """The benchmark table's cell of `variant` (at its longest generation for `generate`), with the
    flag noisy_mask puts on it and `floor` under its noise (job_spread)."""
    flagged = noisy_mask(bench)
    rows = bench[(bench.variant == variant) & (bench.scenario == scenario) & (bench.batch_size == batch_size)
                 & (bench.outcome == "ok")]
    if scenario == "generate":
        rows = rows[(rows["mode"].fillna("eager") == mode) & (rows.use_cache == True)]  # noqa: E712
        rows = rows[rows.new_tokens == rows.new_tokens.max()]
    if len(rows) != 1:
        raise KeyError(f"{len(rows)} {scenario} cells of {variant} at batch {batch_size}")
    i = rows.index[0]
    return readings.SpeedCell(float(rows.at[i, column]), float(rows.at[i, "iqr_over_median"]), bool(flagged.loc[i]),
                              floor)


def job_spread(bench: pd.DataFrame, baseline: str) -> tuple[float, list[str]]:
    """The spread between separate jobs that run the same computation: the baseline and the variants
    that decode on its kernel without an adapter (its merges), as (max - min) / median of their batch-1
    decode speed. One job's IQR/median misses this (fp32, merge-fp and merge-dequant of the toy decode
    at 330, 354 and 303 tokens/s), so it is a floor under every cell's noise."""
    kernel = bench.loc[bench.variant == baseline, "kernel"]
    if kernel.empty:
        return 0.0, []
    # an unmerged adapter adds compute: not the same computation
    twins = [v for v in dict.fromkeys(bench.variant) if "+lora" not in v or "+merge" in v]
    twins = [v for v in twins if (bench.loc[bench.variant == v, "kernel"] == kernel.iloc[0]).all()]
    speeds = []
    for v in twins:
        try:
            speeds.append(speed_cell(bench, v, "generate", 1, "decode_tokens_per_s").value)
        except KeyError:
            continue
    if len(speeds) < 2:
        return 0.0, twins
    return (max(speeds) - min(speeds)) / float(pd.Series(speeds).median()), twins
