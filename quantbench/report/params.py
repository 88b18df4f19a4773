"""What the report needs from the experiment besides the records (the report rule passes it as
JSON; tools that rebuild a report from collected records compute the same)."""
from __future__ import annotations

from quantbench.experiment import Experiment


def report_params(exp: Experiment) -> dict:
    config = exp.config
    return {
        "title": exp.model_name,
        "baseline": exp.baseline,
        "skipped": exp.skipped,
        "recipes": config.get("recipes", []),
        "generate": config["benchmark"]["generate"],
        "bits_per_weight": {v.name: exp.serving_method(v).bits_per_weight for v in exp.variants},
        "stages": stages(exp),
    }


def stages(exp: Experiment) -> list[str]:
    """The stages beside quantize and benchmark that the setup runs (which figures it gets)."""
    return [name for name, runs in (("evaluate", bool(exp.config.get("evaluate"))),
                                    ("finetune", bool(exp.finetune_bases)),
                                    ("recipes", bool(exp.config.get("recipes")))) if runs]


def record_paths(exp: Experiment, root: str) -> list[str]:
    """The records the report reads, in the order its tables list them (the report rule's input)."""
    variants = [v.name for v in exp.variants]
    quantized = list(exp.runnable) + [v.name for v in exp.variants if v.requant]
    # speed-only setups (random weights) leave `evaluate:` out
    evaluated = variants if exp.config.get("evaluate") else []
    return ([f"{root}/records/benchmark/{v}.json" for v in variants]
            + [f"{root}/records/evaluate/{v}.json" for v in evaluated]
            + [f"{root}/records/finetune/{b}.json" for b in exp.finetune_bases]
            + [f"{root}/records/quantize/{m}.json" for m in quantized]
            # where the base came from (the report says what a GGUF-derived base means)
            + ([f"{root}/records/build/base.json"] if exp.config["model"].get("source") == "gguf" else []))
