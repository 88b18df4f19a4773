"""What the report needs from the experiment besides the records (the report rule passes it as
JSON; tools that rebuild a report from collected records compute the same)."""
from __future__ import annotations

from quantbench import engines
from quantbench.experiment import Experiment


def report_params(exp: Experiment) -> dict:
    config = exp.config
    runs = engine_runs(exp)
    return {
        "title": exp.model_name,
        "baseline": exp.baseline,
        "skipped": exp.skipped,
        "recipes": config.get("recipes", []),
        "generate": (config.get("benchmark") or {}).get("generate"),
        "bits_per_weight": {v.name: exp.serving_method(v).bits_per_weight for v in exp.variants},
        "stages": stages(exp),
        # method -> its replicates' variant names (<method>~r<k>), whose rows fold into the method's;
        # absent without replicates, so that the report job of such a setup keeps its params
        **({"replicates": replicates(exp)} if exp.replicas else {}),
        # the KV-cache section is its own page (the kv_report job's); the report links it (absent
        # without kv_cache:, as above)
        **({"kv_cache": True} if config.get("kv_cache") else {}),
        # the serving engines' cells (absent without benchmark.engines beyond builtin, as above)
        **({"engines": {"ran": runs, "not_run": engine_refusals(exp)}} if runs else {}),
    }


def _engine_verdicts(exp: Experiment) -> dict[str, dict[str, str | None]]:
    """engine -> variant -> None (it runs the variant) or why not, for every engine but builtin."""
    wanted = ((exp.config.get("benchmark") or {}).get("engines")) or engines.DEFAULT
    out = {}
    for engine in engines.external(wanted):
        out[engine] = {}
        for v in exp.variants:
            method = exp.serving_method(v)
            out[engine][v.name] = engines.serves(engine, method.backend, adapter=v.lora and not v.merge)
    return out


def engine_runs(exp: Experiment) -> dict[str, list[str]]:
    """engine -> the variants it measures (records/engine/<engine>/<variant>.json): each external engine's,
    and builtin's cells for the same variants."""
    runs = {e: [v for v, why in verdicts.items() if why is None] for e, verdicts in _engine_verdicts(exp).items()
            if any(why is None for why in verdicts.values())}
    return engines.with_builtin(runs, [v.name for v in exp.variants])


def engine_refusals(exp: Experiment) -> dict[str, dict[str, str]]:
    """engine -> variant -> why the engine does not measure it (the report lists these)."""
    return {e: {v: why for v, why in verdicts.items() if why is not None}
            for e, verdicts in _engine_verdicts(exp).items()}


def replicates(exp: Experiment) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, (method, _) in exp.replicas.items():
        out.setdefault(method, []).append(name)
    return out


def stages(exp: Experiment) -> list[str]:
    """The stages beside quantize and benchmark that the setup runs (which records and figures the
    report gets); speed-only setups (random weights) leave `evaluate:` out."""
    out = ["evaluate"] if exp.config.get("evaluate") else []
    if exp.finetune_bases:
        out.append("finetune")
    if exp.config.get("recipes"):
        out.append("recipes")
    if exp.config.get("sensitivity") and "evaluate" in out:
        out.append("sensitivity")
    return out


def benchmarked(exp: Experiment) -> bool:
    """Whether the setup benchmarks (a `benchmark:` section); a fine-tune-only setup does not."""
    return bool(exp.config.get("benchmark"))


def record_paths(exp: Experiment, root: str) -> list[str]:
    """The records the report reads, in the order its tables list them (the report rule's input)."""
    variants = [v.name for v in exp.variants]
    # replicates are quantized and evaluated, never benchmarked (speed does not follow the calibration draw)
    quantized = list(exp.runnable) + list(exp.replicas) + [v.name for v in exp.variants if v.requant]
    evaluated = variants + list(exp.replicas) if "evaluate" in stages(exp) else []
    return ([f"{root}/records/benchmark/{v}.json" for v in variants if benchmarked(exp)]
            + [f"{root}/records/engine/{e}/{v}.json" for e, vs in engine_runs(exp).items() for v in vs]
            + [f"{root}/records/evaluate/{v}.json" for v in evaluated]
            + [f"{root}/records/finetune/{b}.json" for b in exp.finetune_bases]
            + [f"{root}/records/quantize/{m}.json" for m in quantized]
            + [f"{root}/records/sensitivity/{m}.json" for m in sensitivity_methods(exp)]
            # where the base came from (the report says what a GGUF-derived base means)
            + ([f"{root}/records/build/base.json"] if exp.config["model"].get("source") == "gguf" else []))


def sensitivity_methods(exp: Experiment) -> list[str]:
    if "sensitivity" not in stages(exp):
        return []
    return [m for m in exp.config["sensitivity"]["methods"] if m not in exp.skipped]
