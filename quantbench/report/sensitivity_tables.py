"""The sensitivity stage's tables: KL per layer group with its rank, and the mixed-precision methods
beside the uniform ones of their scheme and llama.cpp's k-quant mixes, at their measured sizes."""
from __future__ import annotations

import pandas as pd

from quantbench.report import paired, readings


def sensitivity_table(records: list[dict]) -> pd.DataFrame:
    """One row per (method, group): KL mean and its 95% half-width, the KL per million weights, and the
    group's rank within its family (1 = hurts most)."""
    rows = []
    for r in records:
        if r["stage"] != "sensitivity":
            continue
        bits = r["params"]["method"]["params"].get("bits")
        for g in r["metrics"]["groups"]:
            rows.append({"method": r["subject"], "bits": bits, **g,
                         "kl_per_million_weights": g["kl_mean"] / g["weights"] * 1e6 if g["weights"] else None})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["rank"] = df.groupby(["method", "family"]).kl_mean.rank(ascending=False, method="min").astype(int)
    return df


def mix_rows(records: list[dict]) -> dict[str, dict]:
    """variant -> its quantize record's mix (rule, unit, budget, allocation's average) for mixed methods."""
    return {r["subject"]: r["metrics"]["mix"] for r in records
            if r["stage"] == "quantize" and "mix" in r.get("metrics", {})}


def mix_comparison(records: list[dict], summary: pd.DataFrame, quality: pd.DataFrame) -> pd.DataFrame:
    """The mixed-precision methods, the uniform GPTQ methods of their group size and every GGUF k-quant
    mix: bits per weight measured in the files, KL with its interval, paired task Δ, decode speed."""
    mixes = mix_rows(records)
    if not mixes:
        return pd.DataFrame()
    quant = {r["subject"]: r for r in records if r["stage"] == "quantize"}
    groups = {quant[v]["params"]["method"]["params"].get("group_size") for v in mixes if v in quant}

    def wanted(v: str, r: dict) -> bool:
        m = r["params"]["method"]
        if "+" in v:
            return False
        if m["backend"] == "gptq":
            return v in mixes or (m["params"].get("group_size") in groups and not m["params"].get("desc_act"))
        return m["backend"] == "gguf" and "_K" in str(m["params"].get("type", ""))
    rows = []
    for v, r in quant.items():
        if not wanted(v, r):
            continue
        mix, m = mixes.get(v, {}), r["params"]["method"]
        allocation = (f"llama.cpp {m['params']['type']}" if m["backend"] == "gguf"
                      else mix.get("rule", "uniform") + (f" by {mix['unit']}" if "unit" in mix else ""))
        rows.append({"variant": v, "allocation": allocation,
                     "bits_per_weight_file": r["metrics"]["bits_per_weight"],
                     "bits_per_weight_nominal": r["metrics"].get("nominal_bits_per_weight",
                                                                 r["metrics"]["bits_per_weight"])})
    df = pd.DataFrame(rows)
    q = quality.set_index("variant") if not quality.empty else pd.DataFrame()
    for col in ("kl_mean", "kl_mean_ci95", "delta_average_points", "delta_noise_points", "top1_agreement"):
        df[col] = df.variant.map(q[col]) if col in q else None
    s = summary.set_index("variant") if not summary.empty else pd.DataFrame()
    df["decode_tokens_per_s"] = df.variant.map(s["decode_tokens_per_s"]) if "decode_tokens_per_s" in s else None
    return df.sort_values("bits_per_weight_file").reset_index(drop=True)


def same_size(a: float, b: float, tolerance: float = 0.005) -> bool:
    """Two files store the same bits per weight, within `tolerance` (relative)."""
    return abs(a - b) <= tolerance * max(a, b)


def mix_readings(table: pd.DataFrame, items: dict[str, dict] | None = None,
                 tasks: list[str] | None = None) -> list[str]:
    """Each measured allocation against every variant of the table stored at the same size (the k-quant
    placement on the same quantizer, llama.cpp's own mix): KL by its intervals, and the task average by a
    paired bootstrap over the items both answered (with the flips each way) where per-item files exist."""
    if table.empty or table.kl_mean.isna().all():
        return []
    out = []
    for m in table[table.allocation.str.startswith("sensitivity")].itertuples():
        for o in table.itertuples():
            if o.variant == m.variant or not same_size(m.bits_per_weight_file, o.bits_per_weight_file) \
                    or pd.isna(m.kl_mean) or pd.isna(o.kl_mean):
                continue
            words = readings.compare((m.kl_mean, m.kl_mean_ci95), (o.kl_mean, o.kl_mean_ci95), smaller_is_better=True,
                                     names=(m.variant, o.variant))
            line = (f"`{m.variant}` against `{o.variant}` ({o.allocation}), {m.bits_per_weight_file:.3f} and "
                    f"{o.bits_per_weight_file:.3f} bits/weight in the files: KL {m.kl_mean:.4f} ± "
                    f"{m.kl_mean_ci95:.4f} against {o.kl_mean:.4f} ± {o.kl_mean_ci95:.4f}: {words}")
            res = (paired.compare_items(items[m.variant], items[o.variant], tasks)
                   if items and tasks and m.variant in items and o.variant in items else None)
            if res is not None:
                task_words = readings.compare((res["delta"], res["low"], res["high"]), (0.0, 0.0, 0.0),
                                              smaller_is_better=False, names=(m.variant, o.variant),
                                              paired=(res["low"], res["high"]))
                line += (f"; task average {res['delta']:+.2f} points (paired 95% {res['low']:+.2f} to "
                         f"{res['high']:+.2f}; {res['right_to_wrong']} items lost, {res['wrong_to_right']} gained): "
                         f"{task_words}")
            out.append(line + ".")
    return out
