"""The report's KV-cache section: quality per context length and position bucket with intervals, paired
differences against the same weights with the plain cache, whether weight and cache errors add, and
the cost (bytes per token, decode step time, peak memory, the longest context a budget holds)."""
from __future__ import annotations

import math

from quantbench.kv_config import split
from quantbench.kv_quality import Z95


def _paired(a: dict, b: dict, c: dict | None = None, key: str = "kl") -> tuple[float, float]:
    """Mean and 95% half-width over chunks of a - b (- c): the records' chunks are the same windows and
    positions in the same order, so each difference is taken chunk by chunk (token-weighted)."""
    n = len(a["tokens"])
    if len(b["tokens"]) != n or (c is not None and len(c["tokens"]) != n):
        return float("nan"), float("nan")
    w = a["tokens"]
    d = [a[key][i] - b[key][i] - (c[key][i] if c is not None else 0.0) for i in range(n)]
    total = sum(w)
    mean = sum(wi * di for wi, di in zip(w, d)) / total
    if n < 2:
        return mean, float("nan")
    var = sum(wi * (di - mean) ** 2 for wi, di in zip(w, d)) / total * n / (n - 1)
    return mean, Z95 * math.sqrt(var / n)


def _g(x: float, digits: int = 3) -> str:
    return "–" if x is None or x != x else f"{x:.{digits}g}"


def _pm(x: float, ci: float) -> str:
    return f"{_g(x)} ± {_g(ci, 2)}"


def quality_tables(records: dict[str, dict], contexts: list[int]) -> list[str]:
    lines = []
    for length in contexts:
        lines += [f"### Context {length}", "",
                  "| variant | cache | bucket | KL mean | top-1 agreement | perplexity ratio [95%] | "
                  "KL added by the cache (paired) | chunks |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, rec in records.items():
            variant, cache = split(name)
            buckets = rec["metrics"]["quality"].get(str(length), {})
            plain = records.get(variant, {}).get("metrics", {}).get("quality", {}).get(str(length), {})
            for b, m in buckets.items():
                pr = m["perplexity_ratio_ci95"] or [None, None]
                added = "–"
                if cache and b in plain:
                    added = _pm(*_paired(m["blocks"], plain[b]["blocks"]))
                lines.append(f"| {variant} | {cache or 'plain'} | [{b.replace('-', ', ')}) | "
                             f"{_pm(m['kl_mean'], m['kl_mean_ci95'])} | "
                             f"{_pm(m['top1_agreement'], m['top1_agreement_ci95'])} | "
                             f"{m['perplexity_ratio']:.4f} [{_g(pr[0], 5)}, {_g(pr[1], 5)}] | "
                             f"{added} | {m['chunks']} |")
        lines.append("")
    return lines


def additivity(records: dict[str, dict], baseline: str, contexts: list[int]) -> list[str]:
    """KL(W, C) against KL(W) + KL(C), where the baseline was run with the same cache."""
    rows = []
    for name, rec in records.items():
        variant, cache = split(name)
        if not cache or variant == baseline or variant not in records or f"{baseline}@{cache}" not in records:
            continue
        for length in contexts:
            wc = rec["metrics"]["quality"].get(str(length), {})
            w = records[variant]["metrics"]["quality"].get(str(length), {})
            c = records[f"{baseline}@{cache}"]["metrics"]["quality"].get(str(length), {})
            for b in wc:
                if b not in w or b not in c:
                    continue
                d, ci = _paired(wc[b]["blocks"], w[b]["blocks"], c[b]["blocks"])
                verdict = ("add (inside the noise)" if abs(d) <= ci else
                           "more than the sum" if d > 0 else "less than the sum")
                rows.append(f"| {variant} | {cache} | {length} | [{b.replace('-', ', ')}) | {_g(wc[b]['kl_mean'])} | "
                            f"{_g(w[b]['kl_mean'])} + {_g(c[b]['kl_mean'])} | {_pm(d, ci)} | {verdict} |")
    if not rows:
        return []
    return ["### Do the weight and cache errors add?", "",
            "KL(W, C) of weights W with cache C against KL(W) (W, plain cache) + KL(C) (baseline weights, cache C); "
            "the difference and its interval are paired chunk by chunk.", "",
            "| weights | cache | context | bucket | KL(W, C) | KL(W) + KL(C) | KL(W, C) − sum | reading |",
            "|---|---|---|---|---|---|---|---|", *rows, ""]


def cost_table(records: dict[str, dict]) -> list[str]:
    budgets = next(iter(records.values()))["metrics"]["max_context_fits_derived"].keys()
    lines = ["### Cost", "",
             "Bytes per token are measured from the cache's stored tensors (quantized data, scales and zeros, and "
             "the unquantized residual) after the longest context; the decode step is timed after "
             "filling the cache to the decode context. 'Longest context in N GB' is derived: "
             "(N GB − weights) / bytes per token, batch 1, activations not counted; beyond the model's own context "
             "it says what the memory would hold, not what the model can use.", "",
             "| variant | cache | KV bytes/token | × plain | weights MB | decode ctx | batch | step ms median "
             "(IQR/med) | step ms mean | peak MB | " + " | ".join(f"ctx in {b} GB" for b in budgets) + " |",
             "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(budgets)]
    for name, rec in records.items():
        variant, cache = split(name)
        m = rec["metrics"]
        plain = records.get(variant, {}).get("metrics", {}).get("kv_bytes_per_token")
        ratio = f"{m['kv_bytes_per_token'] / plain:.3f}" if plain else "–"
        fits = " | ".join(f"{v:,}" for v in m["max_context_fits_derived"].values())
        for d in m["decode"]:
            if d.get("status") != "ok":
                lines.append(f"| {variant} | {cache or 'plain'} | {m['kv_bytes_per_token']:,.0f} | {ratio} | "
                             f"{m['weights_bytes'] / 2**20:.1f} | – | {d['batch_size']} | {d['status']} | – | – | "
                             f"{fits} |")
                continue
            lines.append(f"| {variant} | {cache or 'plain'} | {m['kv_bytes_per_token']:,.0f} | {ratio} | "
                         f"{m['weights_bytes'] / 2**20:.1f} | {d['context']} | {d['batch_size']} | "
                         f"{d['decode_step_ms_median']:.2f} ({d['decode_step_ms_iqr_over_median']:.2f}) | "
                         f"{d['decode_step_ms_mean']:.2f} | {d['peak_memory_mb']:.0f} | {fits} |")
    return lines + [""]


def markdown(records: dict[str, dict], baseline: str, contexts: list[int], figure: str | None) -> str:
    first = next(iter(records.values()))
    kv = first["params"]["kv_cache"]
    caches = {}
    for rec in records.values():
        c = rec["params"].get("cache")
        if c:
            caches[c["name"]] = c
    sizes = ", ".join(f"{n} windows of {c}" for c, n in zip(contexts, kv["windows"]))
    lines = ["# KV-cache quantization by context length", "",
             f"Each row: the weights of a variant, served with a KV cache (plain: the runtime's own, "
             f"float for transformers, f16 for llama.cpp), on {sizes} "
             f"tokens of `{kv['text']}`, fed in chunks of {kv['chunk']} through the cache, against the baseline "
             f"({baseline}) with the plain cache on the same chunks. KL over the reference's top {kv['top_k']} "
             "tokens (a lower bound of the full KL). Intervals: 95%, over the chunks of each bucket "
             "(docs/kv-cache.md).", "",
             "Caches: " + "; ".join(f"`{n}` = {c['backend']} {c['params']}" for n, c in caches.items()), ""]
    if figure:
        lines += [f"![KL by position bucket]({figure})", ""]
    lines += quality_tables(records, contexts) + additivity(records, baseline, contexts) + cost_table(records)
    return "\n".join(lines)


def figure(records: dict[str, dict], contexts: list[int], path: str) -> None:
    """KL by position bucket at the longest context, one line per (weights, cache) row, 95% bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    longest = str(max(contexts))
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for i, (name, rec) in enumerate(records.items()):
        buckets = rec["metrics"]["quality"].get(longest, {})
        xs = [j + (i - len(records) / 2) * 0.03 for j in range(len(buckets))]
        ys = [m["kl_mean"] for m in buckets.values()]
        if not any(y > 0 for y in ys):
            continue  # the reference itself
        err = [m["kl_mean_ci95"] if m["kl_mean_ci95"] == m["kl_mean_ci95"] else 0 for m in buckets.values()]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=name)
        ax.set_xticks(range(len(buckets)), [f"[{b.replace('-', ', ')})" for b in buckets])
    ax.set_yscale("log")
    ax.set_xlabel(f"position bucket (tokens), windows of {longest}")
    ax.set_ylabel("KL to baseline with plain cache (nats/token)")
    ax.set_title("KL by position, 95% interval over chunks")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the axes: no point hidden
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
