"""Tables for results/reference/<gpu>/README.md straight from benchmark and fine-tune records (every cell field, incl.
decode_step_ms and the profiles, which the generic report does not show).
Usage: python tools/gpu/summarize.py RESULTS_DIR > RESULTS_DIR/gpu_tables.md"""
import glob
import json
import sys

import pandas as pd

root = sys.argv[1]
recs = [json.load(open(f)) for f in sorted(glob.glob(f"{root}/records/benchmark/*.json"))]
cells = pd.DataFrame([{"variant": r["subject"], "kernel": r["kernel"], **c} for r in recs for c in r["cells"]])


def md(df, digits=2):
    return df.to_markdown(index=False, floatfmt=f".{digits}f") + "\n"


repeats = sorted({r["params"]["benchmark"]["repeats"] for r in recs})
gpus = sorted({r["provenance"].get("gpu", "?") for r in recs})
out = [f"# GPU tables: {root}\n", f"{', '.join(gpus)}. Medians of {'/'.join(map(str, repeats))} timed runs after "
       "warm-up; IQR/median is the spread.\n"]
meta = pd.DataFrame([{"variant": r["subject"], "kernel": r["kernel"], "load_s": r["metrics"]["load_s"],
                      "weights_memory_mb": r["metrics"]["weights_memory_mb"],
                      "decode_weights_read_mb": r["metrics"]["decode_weights_read_mb"],
                      "copy_bandwidth_gb_per_s": r["metrics"]["copy_bandwidth_gb_per_s"],
                      "kernel_prebuild_s": r["load"].get("kernel_prebuild_s"),
                      "random_weights": r["params"].get("random_weights")} for r in recs])
out += ["## Models\n", md(meta)]
pre = cells[cells.scenario == "prefill"]
out += ["## Prefill (prompt 512)\n",
        md(pre[["variant", "batch_size", "prefill_latency_ms", "iqr_over_median", "prefill_tokens_per_s",
                "peak_memory_mb", "peak_reserved_mb"]].sort_values(["batch_size", "variant"]))]
gen = cells[cells.scenario == "generate"].copy()
cols = ["variant", "mode", "batch_size", "new_tokens", "use_cache", "decode_ms_per_token", "decode_tokens_per_s",
        "decode_step_ms", "iqr_over_median", "decode_roofline_pct", "energy_j_per_token", "avg_power_w",
        "attempts", "peak_memory_mb", "first_call_s"]
out += ["## Generate (prompt 30)\n", md(gen[[c for c in cols if c in gen]].sort_values(
    ["mode", "use_cache", "new_tokens", "batch_size", "variant"]))]
plain = sorted({r["subject"] for r in recs if "+" not in r["subject"]})
eager = gen[(gen["mode"] == "eager") & gen.variant.isin(plain)]
if len(eager):
    eager = eager.assign(cell=[f"{'cache' if c else 'no cache'}, {int(n)} tok"
                               for c, n in zip(eager.use_cache, eager.new_tokens)])
    pivot = eager.pivot_table(index=["cell", "batch_size"], columns="variant",
                              values="decode_tokens_per_s").reset_index()
    out += ["## Eager generate, tokens/s (the comparison's grid; prefill inside the latency)\n", md(pivot, 0)]
prof = [{"variant": r["subject"], **{k: p.get(k) for k in ("mode", "new_tokens", "wall_ms", "kernel_ms", "gpu_busy_pct",
                                                             "launches_per_token", "error")},
         "top_kernels": "; ".join(f"{k['kernel'][:60]} {k['share_pct']:.0f}%" for k in p.get("top_kernels", [])[:3])}
        for r in recs for p in r.get("profiles", [])]
out += ["## Profiles (batch 1, one generate call)\n", md(pd.DataFrame(prof), 1)]
checks = [{"variant": r["subject"], **c} for r in recs for c in r.get("fast_vs_eager", r.get("compiled_vs_eager", []))]
out += ["## Static-cache decoders against eager generate (greedy tokens, each fast batch size)\n",
        md(pd.DataFrame(checks))]
ft = [json.load(open(f)) for f in sorted(glob.glob(f"{root}/records/finetune/*.json"))]
out += ["## LoRA fine-tuning (batch 4 x 512 tokens)\n", md(pd.DataFrame([
    {"base": r["subject"].removesuffix("+lora"), "kernel": r.get("kernel"),
     **{k: r["metrics"][k] for k in ("finetune_step_ms", "finetune_step_iqr_over_median", "finetune_tokens_per_s",
                                     "finetune_peak_memory_mb", "trainable_parameters")}} for r in ft]))]
print("\n".join(out))
