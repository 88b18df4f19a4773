"""The serving engines' cells (records/engine/<engine>/<variant>.json, quantbench.engines.cells) as a table:
one row per engine and variant, each figure with its spread; the decode figure as a ratio to the baseline's
on the same engine (a scheme's speed-up where it is served), and quantbench's own decode time (the builtin
rows: the same cells through quantbench's decoders) over each engine's for the same variant (above 1: ours
is slower)."""
from __future__ import annotations

import pandas as pd

from quantbench.report.markdown import fmt


def _ratio(a, b):
    """a / b where both were measured (an unresolved decode cell has no figure)."""
    return a / b if pd.notna(a) and pd.notna(b) and b else None


def engine_table(records: list[dict], baseline: str | None) -> pd.DataFrame:
    rows = []
    for r in records:
        if r.get("stage") != "engine":
            continue
        engine, variant = r["subject"].split("/", 1)
        cells = r["cells"]
        row = {"engine": engine, "variant": variant, "backend": r.get("backend"),
               "engine_version": r["engine"].get("vllm") or r["engine"].get("llama_cpp_python")
               or r["engine"].get("mode"),
               "quantization": r["engine"].get("quantization"), "load_s": r["metrics"]["load_s"]}
        for c in cells["decode"]:
            b = c["batch"]
            row[f"decode_ms_per_token_b{b}"] = c["ms_per_token"]  # None where the cell is unresolved
            row[f"decode_iqr_over_median_b{b}"] = c["timing"]["iqr_over_median"]
            row[f"call_ms_per_token_b{b}"] = c["call_ms_per_token"]
        row["prefill_ms"] = cells["prefill"]["ms"]
        row["prefill_iqr_over_median"] = cells["prefill"]["timing"]["iqr_over_median"]
        row["throughput_output_tokens_per_s"] = cells["throughput"]["output_tokens_per_s"]
        row["throughput_iqr_over_median"] = cells["throughput"]["timing"]["iqr_over_median"]
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    # the smallest batch by number (as strings, "b16" sorts before "b4")
    first = min((c for c in df.columns if c.startswith("decode_ms_per_token_b")),
                key=lambda c: int(c.rsplit("_b", 1)[1]))
    ratio = []
    for _, row in df.iterrows():
        base = df[(df.engine == row.engine) & (df.variant == baseline)]
        ratio.append(_ratio(base[first].iloc[0], row[first]) if not base.empty else None)
    df[f"speedup_vs_baseline_{first.rsplit('_', 1)[1]}"] = ratio
    ours = df[df.engine == "builtin"].set_index("variant")
    for col in [c for c in df.columns if c.startswith("decode_ms_per_token_b")]:
        b = col.rsplit("_", 1)[1]
        df[f"builtin_over_engine_time_{b}"] = [
            _ratio(ours.loc[row.variant, col], row[col]) if row.engine != "builtin" and row.variant in ours.index
            else None
            for _, row in df.iterrows()]
    return df.sort_values(["engine", "variant"]).reset_index(drop=True)


def _with_spread(value, spread) -> str:
    if pd.isna(value):
        return "–"
    return f"{value:,.3g} (±{100 * spread:.0f}%)" if pd.notna(spread) else f"{value:,.3g}"


def engine_section(df: pd.DataFrame, not_run: dict[str, dict[str, str]]) -> list[str]:
    """The report's engines section: the table, its cells' definitions, and the variants each engine left
    out with the reason."""
    parts = ["## Serving engines\n"]
    if not df.empty:
        parts.append("Each engine loads the variant's folder itself and runs the same cells "
                     "(quantbench/engines/cells.py): decode ms per token at each batch size after a short prompt "
                     "(time for 1 + N tokens minus time for 1, over N), one row's prefill, and an offline batch's "
                     "output tokens per second; each figure is a median, its IQR/median in brackets. A decode "
                     "cell whose difference is not above zero is unresolved (–): its steps were below the engine's "
                     "per-call noise, and engines.csv keeps the long call's time per token instead. The speed-up "
                     "is the baseline's decode time at the smallest batch over the variant's, on the same engine; "
                     "builtin over engine is quantbench's own decode time (the builtin rows, the same cells) over "
                     "the engine's for that variant: above 1, ours is slower.\n")
        shown = df[["engine", "variant", "engine_version", "quantization"]].copy()
        for col in df.columns:
            spread = col.replace("decode_ms_per_token", "decode_iqr_over_median").replace(
                "prefill_ms", "prefill_iqr_over_median").replace("throughput_output_tokens_per_s",
                                                                 "throughput_iqr_over_median")
            if col.startswith(("decode_ms", "prefill_ms", "throughput_output")):
                shown[col] = [_with_spread(v, s) for v, s in zip(df[col], df[spread])]
            elif col.startswith(("speedup", "builtin_over")):
                shown[col] = df[col]
        parts.append(fmt(shown) + "\n")
    for engine, skipped in sorted(not_run.items()):
        if skipped:
            parts.append(f"Not run by {engine}: " + "; ".join(f"{v} ({why})" for v, why in sorted(skipped.items()))
                         + ".\n")
    return parts
