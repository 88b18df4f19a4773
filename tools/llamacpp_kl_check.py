"""Our KL divergence against llama.cpp's own (`llama-perplexity --kl-divergence`) for the GGUF variants,
on the same tokens: llama.cpp tokenizes the held-out text and picks the scored positions, and our code
scores exactly those (quantbench/llamacpp_kl.py says how). Builds llama-perplexity once
(tools/build_llama_perplexity.sh) and needs the setup's model folders and data, e.g. for SmolLM2 (in a
copy of the checkout: those jobs rewrite committed records):

    bash scripts/run.sh --configfile config/smollm2.yaml results/smollm2-135m/models/fp32 \\
        results/smollm2-135m/models/gguf-{f32,q8_0,q4_k_m,q4_0} results/smollm2-135m/data
    .venv/bin/python tools/llamacpp_kl_check.py results/smollm2-135m --chunks 40 \\
        --out results/reference/cpu/smollm2-135m/kl_crosscheck

writes OUT.csv (every statistic of every source), OUT.md (the tables and the agreement) and
OUT-logs/ (llama-perplexity's own output).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from quantbench import llamacpp_kl  # noqa: E402
from quantbench.data import load_texts  # noqa: E402
from quantbench.llamacpp import GGUF_FILE  # noqa: E402
from quantbench.loading import load_model  # noqa: E402
from quantbench.modelio import RunContext, load_tokenizer  # noqa: E402
from quantbench.provenance import device_description, git_commit  # noqa: E402

# The sources of each statistic: (key, what the base is, which vocabulary, what its ± is)
LLAMA = "llama.cpp"
SOURCES = {
    LLAMA: ("{base_gguf} run by llama-perplexity, stored as 16-bit log-probs", "full (base log-prob > -16)",
            "1 standard error over tokens"),
    "ours": ("{base} in PyTorch (the project's baseline)", "top-{top_k} + rest (as evaluate.py reports)",
             "95% over chunks"),
    "ours, full vocabulary": ("{base} in PyTorch", "full", "95% over chunks"),
    "ours, llama.cpp's base": ("{base_gguf} run by llama-cpp-python", "full", "95% over chunks"),
    "ours, llama.cpp's base, 16-bit": ("{base_gguf} run by llama-cpp-python, rounded as llama-perplexity stores it",
                                       "full (base log-prob > -16)", "95% over chunks"),
}
STATISTICS = {  # name in the tables, how to print it
    "kl_mean": ("KL mean (nats)", "{:.5g}"), "kl_median": ("KL median", "{:.5g}"), "kl_p99": ("KL p99", "{:.5g}"),
    "kl_p999": ("KL p99.9", "{:.5g}"), "kl_max": ("KL max", "{:.5g}"), "same_top": ("same top token", "{:.4f}"),
    "dp_mean": ("mean Δp", "{:+.3g}"), "dp_rms": ("RMS Δp", "{:.5g}"), "ln_ppl_ratio": ("ln(PPL ratio)", "{:+.4g}"),
    "ppl": ("PPL(variant)", "{:.6g}"), "ppl_base": ("PPL(base)", "{:.6g}"),
}
# below this KL llama.cpp's figure is its 16-bit storage's rounding, and a relative difference says nothing
KL_FLOOR = 1e-4


def heldout_text(data_dir: Path, tokenizer, n_tokens: int) -> tuple[str, list[int], int]:
    """The held-out documents the project scores, joined by a newline (the project joins their tokens
    with EOS), until they tokenize to n_tokens."""
    texts = load_texts(str(data_dir / "heldout.jsonl"))
    chosen, n = [], 0
    for t in texts:
        chosen.append(t)
        n += len(tokenizer(chosen[-1], add_special_tokens=False).input_ids) + 1
        if n >= n_tokens:
            break
    text = "\n".join(chosen) + "\n"
    return text, tokenizer(text, add_special_tokens=False).input_ids, len(chosen)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="a setup's results folder, with models/ and data/")
    ap.add_argument("--base", default="fp32", help="the project's baseline (a models/ folder run in PyTorch)")
    ap.add_argument("--base-gguf", default="gguf-f32", help="llama.cpp's base: the same weights as a GGUF file")
    ap.add_argument("--variants", nargs="+", default=["gguf-f32", "gguf-q8_0", "gguf-q4_k_m", "gguf-q4_0"])
    ap.add_argument("--chunks", type=int, default=40, help="chunks of --ctx tokens (half of each is scored)")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--top-k", type=int, default=256, help="the setup's evaluate.distribution_top_k")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True, help="OUT.csv, OUT.md and OUT-logs/ are written")
    ap.add_argument("--work", type=Path, help="scratch folder for the text and llama.cpp's base file (~25 MB/chunk)")
    ap.add_argument("--reuse", action="store_true",
                    help="take llama.cpp's side from an earlier run with the same --work and --out (reruns ours only)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = args.results / "models"
    for name in {args.base, args.base_gguf, *args.variants}:
        if not (models / name).is_dir():
            print(f"llamacpp_kl_check: {models / name} is missing (the module docstring says how to make it)",
                  file=sys.stderr)
            return 2
    started = time.time()
    binary, build_s = llamacpp_kl.build()
    print(f"llama-perplexity: {binary}" + (f" (built in {build_s:.0f} s)" if build_s else " (cached)"), file=sys.stderr)

    work = args.work or Path(tempfile.mkdtemp(prefix="kl-check-"))
    work.mkdir(parents=True, exist_ok=True)
    logs = args.out.parent / (args.out.name + "-logs")
    logs.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(str(models / args.base))
    text, hf_ids, n_docs = heldout_text(args.results / "data", tokenizer, (args.chunks + 1) * args.ctx)
    (work / "heldout.txt").write_text(text)

    kld = work / "base.kld"
    timings = {}
    if args.reuse:
        theirs = {v: llamacpp_kl.parse((logs / f"kl-{v}.log").read_text()) for v in args.variants}
        timings = json.loads((logs / "run.json").read_text())["timings_s"]
    else:
        t0 = time.monotonic()
        llamacpp_kl.base_run(binary, models / args.base_gguf / GGUF_FILE, work / "heldout.txt", kld, args.ctx,
                             args.chunks, args.threads, logs / f"base-{args.base_gguf}.log")
        timings["llama.cpp base run"] = time.monotonic() - t0
        theirs = {}
        t0 = time.monotonic()
        for v in args.variants:
            theirs[v] = llamacpp_kl.kl_run(binary, models / v / GGUF_FILE, kld, args.ctx, args.threads,
                                           logs / f"kl-{v}.log")
        timings["llama.cpp KL runs"] = time.monotonic() - t0

    ctx = RunContext(device="cpu", dtype_name="float32", seed=0)
    loaded = {name: load_model(str(models / name), ctx)[0] for name in {args.base, args.base_gguf, *args.variants}}
    vocab = loaded[args.base_gguf]._llm._model
    bos = vocab.token_bos() if vocab.add_bos_token() else None
    tokens = llamacpp_kl.read_tokens(kld)
    flat = tokens.flatten().tolist()
    ours_tok = hf_ids[:len(flat)] if bos is None else ([bos] + hf_ids)[:len(flat)]
    mismatch = next((i for i, (a, b) in enumerate(zip(flat, ours_tok)) if a != b), None)
    windows = llamacpp_kl.scored_windows(tokens, bos)

    t0 = time.monotonic()
    base_models = {"ours": (loaded[args.base], args.top_k), "ours, full vocabulary": (loaded[args.base], None),
                   "ours, llama.cpp's base": (loaded[args.base_gguf], None),
                   "ours, llama.cpp's base, 16-bit": (loaded[args.base_gguf], llamacpp_kl.SIXTEEN_BIT)}
    per_token = llamacpp_kl.per_token(base_models, {v: loaded[v] for v in args.variants}, windows)
    timings["ours (all variants, three bases)"] = time.monotonic() - t0

    # targets whose base log-prob llama.cpp's storage lifts to its floor (16 nats below the top): rounding
    # moves a log-prob by at most 16/65535/2 nats, the floor by more
    first = args.variants[0]
    lifted = per_token[(first, SOURCES_BASE_GGUF)]["nll_ref"] - per_token[(first, STORED)]["nll_ref"]
    rows = []
    fill = {"base": args.base, "base_gguf": args.base_gguf, "top_k": args.top_k}
    for v in args.variants:
        sources = {LLAMA: theirs[v], **{label: llamacpp_kl.statistics(per_token[(v, label)], len(windows))
                                        for label in base_models}}
        for source, stats in sources.items():
            base, vocabulary, unc_kind = (s.format(**fill) for s in SOURCES[source])
            for stat, (value, unc) in stats.items():
                if stat in STATISTICS:
                    rows.append({"variant": v, "statistic": stat, "source": source, "value": value,
                                 "uncertainty": unc, "uncertainty_kind": unc_kind if unc is not None else "",
                                 "base": base, "vocabulary": vocabulary})
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    run = {
        "commit": git_commit(), "cpu": device_description("cpu").get("cpu"), "threads": args.threads,
        "python": platform.python_version(), "binary": str(binary), "build_s": build_s,
        "chunks": args.chunks, "ctx": args.ctx,
        "scored_tokens": int(per_token[(args.variants[0], "ours")]["kl"].numel()),
        "documents": n_docs, "bos": bos, "tokenization_identical": mismatch is None,
        "first_mismatch": mismatch, "timings_s": {k: round(t, 1) for k, t in timings.items()},
        "targets_below_floor": int((lifted > 1e-3).sum()), "floor_bias_nats": float(lifted.mean()),
        "wall_s": round(time.time() - started, 1), "setup": args.results.name, "logs": logs.name, "bases": fill,
    }
    (logs / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(table, run))
    del loaded  # llama.cpp's models freed here, not at interpreter exit (where llama-cpp-python's __del__ fails)
    print(args.out.with_suffix(".md").read_text())
    return 0


def _cell(row, fmt: str) -> str:
    text = fmt.format(row["value"])
    return text if pd.isna(row["uncertainty"]) else f"{text} ± {fmt.format(abs(row['uncertainty'])).lstrip('+')}"


def agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Per variant: each of our KL means against llama.cpp's, in relative terms and against our 95% interval."""
    kl = table[table["statistic"] == "kl_mean"].pivot(index="variant", columns="source", values="value")
    half = table[table["statistic"] == "kl_mean"].pivot(index="variant", columns="source", values="uncertainty")
    out = []
    for v in kl.index:
        for source in [s for s in SOURCES if s != LLAMA]:
            diff = kl.loc[v, source] - kl.loc[v, LLAMA]
            out.append({"variant": v, "source": source, "difference": diff,
                        "relative": diff / kl.loc[v, LLAMA] if abs(kl.loc[v, LLAMA]) >= KL_FLOOR else float("nan"),
                        "our_ci95": half.loc[v, source], "inside": abs(diff) <= half.loc[v, source]})
    return pd.DataFrame(out)


def reading(table: pd.DataFrame, run: dict) -> str:
    """The agreement in words, every figure taken from the table and the run's facts."""
    ag = agreement(table)
    quantized = ag[ag["relative"].notna()]
    names = list(dict.fromkeys(quantized["variant"]))
    worst = lambda source: quantized[quantized["source"] == source]["relative"].abs().max()  # noqa: E731
    emulated = quantized[quantized["source"] == STORED]
    storage, storage_rel = emulated["difference"].abs().max(), emulated["relative"].abs().max()
    truncated = quantized[quantized["source"] == "ours"]
    beyond = truncated[~truncated["inside"]]["variant"].tolist()
    inside = quantized[~quantized["source"].isin(["ours"])]["inside"].all()
    value = lambda stat, v, source: table[(table["statistic"] == stat) & (table["variant"] == v)  # noqa: E731
                                          & (table["source"] == source)]["value"].iloc[0]
    largest = lambda stat: max(abs(value(stat, v, "ours") - value(stat, v, LLAMA)) for v in names)  # noqa: E731
    offsets = [value("ln_ppl_ratio", v, LLAMA) - value("ln_ppl_ratio", v, SOURCES_BASE_GGUF) for v in ag["variant"]]
    v0 = names[0]
    text = (f"**Agreement.** On the same {run['scored_tokens']} tokens, for the quantized variants "
            f"({', '.join(names)}), our KL mean over the full vocabulary is within "
            f"{worst('ours, full vocabulary'):.2%} of llama.cpp's with the project's base "
            f"({run['bases']['base']} in PyTorch) and within {worst(SOURCES_BASE_GGUF):.2%} with llama.cpp's own base "
            f"({run['bases']['base_gguf']}); keeping that base's log-probs in 16 bits as llama-perplexity does "
            f"reproduces its KL mean to {storage:.1e} nats ({storage_rel:.1e} of it; llama-perplexity prints six "
            "decimals), and its percentiles, same-top-token rate and Δp to the digits it prints. These "
            "full-vocabulary differences are " + ("inside" if inside else "not all inside")
            + " our 95% intervals, but those intervals (the held-out text's sampling noise, shared by both sides) "
            "are not what separates two computations on the same tokens: the residual is llama.cpp's 16-bit "
            "storage of its base and, with the PyTorch base, two float32 runtimes. **The KL as evaluate.py reports "
            f"it** (the base's top {run['bases']['top_k']} tokens plus one bucket for the rest) **is "
            f"{-truncated['relative'].max():.1%} to {-truncated['relative'].min():.1%} below llama.cpp's**"
            + (f" (beyond our interval for {', '.join(beyond)})" if beyond else "")
            + ": a lower bound of the full KL (quantbench/distribution.py), by construction, not a disagreement; "
            "read the README's KL figures as about that much below what llama.cpp's tool would report. The statistics "
            "the truncation does not touch agree with llama.cpp's (largest difference over the quantized variants, "
            f"ours as evaluated: same top token {largest('same_top'):.1g}, where the two bases' top tokens are "
            f"near-ties; RMS Δp {largest('dp_rms'):.1g}), except ln(PPL ratio): llama.cpp's is "
            + (f"{min(offsets):.5f}" if f"{min(offsets):.5f}" == f"{max(offsets):.5f}"
               else f"{min(offsets):.5f} to {max(offsets):.5f}")
            + f" above ours on llama.cpp's base on every variant, {run['bases']['base_gguf']} "
            "against itself included, because its stored base gives a target token more than 16 nats below the top "
            "token the log-prob of that floor instead of its own"
            + (f" ({run['targets_below_floor']} of the {run['scored_tokens']} targets here, "
               f"{run['floor_bias_nats']:.5f} nats per token on average)" if "targets_below_floor" in run else "")
            + f", so its PPL(base) reads {value('ppl_base', v0, LLAMA):.4f} where the base's is "
            f"{value('ppl_base', v0, SOURCES_BASE_GGUF):.4f}; with its storage we get its figure (the 16-bit column).")
    for v in ag[ag["relative"].isna()]["variant"].unique():
        text += (f" For {v}, the base's own weights, llama.cpp reports a KL mean of {value('kl_mean', v, LLAMA):.6f} "
                 f"and we report {value('kl_mean', v, 'ours'):.1e} (against llama.cpp's base, "
                 f"{value('kl_mean', v, SOURCES_BASE_GGUF):.1e}): at this level llama.cpp's figure is its 16-bit "
                 "storage's rounding (it can be negative), ours the two runtimes' float32 arithmetic; both say the "
                 "file is the base model.")
    return text


SOURCES_BASE_GGUF = "ours, llama.cpp's base"
STORED = "ours, llama.cpp's base, 16-bit"


def markdown(table: pd.DataFrame, run: dict) -> str:
    """OUT.md from the table and the run's facts (run.json): rerun on them to reword without recomputing."""
    variants = list(dict.fromkeys(table["variant"]))
    lines = [f"# Our KL against llama.cpp's own tool: {run['setup']}, GGUF variants", "",
             f"Made by `tools/llamacpp_kl_check.py` at commit {run['commit']} on {run['cpu']} "
             f"({run['threads']} threads); llama.cpp's output is in `{run['logs']}/`. "
             f"{run['chunks']} chunks of {run['ctx']} tokens of the held-out text (the setup's `data/heldout.jsonl`, "
             f"its first {run['documents']} documents joined by a newline), tokenized by llama.cpp; both sides score "
             f"the second half of each chunk, {run['scored_tokens']} tokens, the same tokens and positions"
             + (f" (BOS, id {run['bos']}, in each chunk's first slot, as llama.cpp puts it)" if run["bos"] is not None
                else " (this vocabulary adds no BOS)")
             + ". Our tokenizer gives the same ids for that text: "
             + ("yes, all of them." if run["tokenization_identical"]
                else f"no, the first difference is at token {run['first_mismatch']}.") + "", "",
             "Sources:", ""]
    for source, (base, vocabulary, unc) in SOURCES.items():
        lines.append(f"- **{source}**: base {base.format(**run['bases'])}; vocabulary "
                     f"{vocabulary.format(**run['bases'])}; ± is {unc}.")
    lines += ["", reading(table, run), "", "## KL mean", "", "| variant | " + " | ".join(SOURCES) + " |",
              "|---" * (len(SOURCES) + 1) + "|"]
    kl = table[table["statistic"] == "kl_mean"]
    for v in variants:
        cells = [_cell(kl[(kl["variant"] == v) & (kl["source"] == s)].iloc[0], "{:.5g}") for s in SOURCES]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += ["", "## Agreement of the KL mean", "",
              "Difference from llama.cpp's value, relative to it (not shown where llama.cpp's value is below "
              f"{KL_FLOOR:g}), and whether it lies inside our 95% interval:", "",
              "| variant | source | difference | relative | our 95% half-width | inside |", "|---|---|---|---|---|---|"]
    for _, r in agreement(table).iterrows():
        relative = "–" if pd.isna(r["relative"]) else f"{r['relative']:+.3%}"
        lines.append(f"| {r['variant']} | {r['source']} | {r['difference']:+.2e} | {relative} | "
                     f"{r['our_ci95']:.2e} | {'yes' if r['inside'] else 'no'} |")
    lines += ["", "## Every statistic both compute", ""]
    for v in variants:
        lines += [f"**{v}**", "", "| statistic | " + " | ".join(SOURCES) + " |", "|---" * (len(SOURCES) + 1) + "|"]
        sub = table[table["variant"] == v]
        for stat, (label, fmt) in STATISTICS.items():
            cells = []
            for s in SOURCES:
                hit = sub[(sub["statistic"] == stat) & (sub["source"] == s)]
                cells.append(_cell(hit.iloc[0], fmt) if len(hit) else "–")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    times = ", ".join(f"{k} {t:.0f} s" for k, t in run["timings_s"].items())
    build = f"built in {run['build_s']:.0f} s by this run" if run["build_s"] else "built before this run"
    lines += [f"Times (wall, {run['threads']} threads, on a machine shared with other jobs): {times}; "
              f"{run['wall_s']:.0f} s in all; llama-perplexity {build}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main(sys.argv[1:]))
