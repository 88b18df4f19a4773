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
    }
