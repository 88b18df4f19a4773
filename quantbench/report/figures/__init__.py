"""Every figure of the report, one question each. `FIGURES` names them, `wanted` those a setup's
stages call for (the report rule's outputs and report.py both read it); `draw` builds one from the
report's tables and returns the figure with its caption, which says what is plotted and how its
noise is shown."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from quantbench.report import replicates, style, tables, variants


@dataclass
class Inputs:
    records: list[dict]
    bench: pd.DataFrame
    quality: pd.DataFrame
    summary: pd.DataFrame
    finetune: pd.DataFrame
    params: dict
    items: dict[str, dict] = field(default_factory=dict)  # per-item task outcomes by variant (paired tests)
    # the runs of methods with calibration replicates, one row each (report.replicates.replicate_table)
    replicates: pd.DataFrame = field(default_factory=pd.DataFrame)
    looks: dict[str, style.Look] = field(init=False)

    def __post_init__(self):
        self.variants = variants.variant_table(self.records)
        self.looks = style.looks(self.variants)

    def look(self, variant: str) -> style.Look:
        return self.looks.get(variant) or style.look("other", None)


def measured_bits(records: list[dict], nominal: dict[str, float]) -> dict[str, float]:
    """Bits per weight of each variant: the scheme's nominal bits, or what its quantize job measured
    in the file where that differs (a GGUF type's mixes and fallbacks)."""
    bits = dict(nominal)
    for r in records:
        m = r.get("metrics", {})
        if r["stage"] == "quantize" and "nominal_bits_per_weight" in m:
            bits[r["subject"]] = m["bits_per_weight"]
    return bits


def inputs(records: list[dict], params: dict, items: dict[str, dict] | None = None) -> Inputs:
    """The tables the report writes, built the same way report.py builds them; items: the evaluate
    stage's per-item files by variant (paired.items_beside), for paired task noise."""
    bench = tables.benchmark_table(records)
    quality = tables.quality_table(records, params["baseline"], items)
    bits = measured_bits(records, params["bits_per_weight"])
    summary = tables.summary_table(bench, quality, bits, params["generate"])
    runs = replicates.replicate_table(tables.quality_table(records, params["baseline"], items, fold_replicates=False),
                                      records) if replicates.runs_of(quality_variants(records)) else pd.DataFrame()
    return Inputs(records, bench, quality, summary, tables.finetune_table(records), params, items or {}, runs)


def quality_variants(records: list[dict]) -> list[str]:
    return [r["subject"] for r in records if r["stage"] == "evaluate"]


def _registry():
    from quantbench.report.figures import finetune, quality, recipe, sensitivity, speed
    return {"quality_vs_memory": quality.quality_vs_memory,
            "decode_vs_memory": speed.decode_vs_memory,
            "throughput_vs_batch": speed.throughput_vs_batch,
            "memory": speed.memory_per_variant,
            "finetune_step": finetune.step_time,
            "finetune_loss": finetune.loss_curves,
            "recipe_kl": recipe.recipe_kl,
            "sensitivity": sensitivity.sensitivity}


FIGURES = list(_registry())
# figure -> the stages whose records it plots: a setup that runs no such stage (a speed-only GPU
# setup has no evaluate, fine-tune or recipe) gets no such figure rather than an empty one
# (quality against memory needs both: the memory is the benchmark's measurement)
NEEDS = {"quality_vs_memory": {"evaluate", "benchmark"}, "finetune_step": {"finetune"},
         "finetune_loss": {"finetune"}, "recipe_kl": {"recipes"}, "sensitivity": {"sensitivity"},
         "decode_vs_memory": {"benchmark"}, "throughput_vs_batch": {"benchmark"}, "memory": {"benchmark"}}


def wanted(stages, benchmarked: bool = True) -> list[str]:
    """The FIGURES of a setup whose stages (any of 'evaluate', 'finetune', 'recipes') are `stages`;
    the workflow always benchmarks, records collected off a quality-only run (benchmarked False) don't."""
    present = {*stages, "benchmark"} if benchmarked else set(stages)
    return [f for f in FIGURES if NEEDS[f] <= present]


def draw(name: str, data: Inputs):
    """(figure, caption) for one of FIGURES."""
    return _registry()[name](data)
