# Input and params functions of the stage rules (quantize.smk, evaluate.smk, report.smk): kept out
# of the rule files (Snakemake's linter asks for rules and functions apart); included by common.smk.
import json

from quantbench import calibration_draw, suites  # noqa: E402


def quantize_spec(variant, method):
    m = EXP.method(method)
    extra = {"method": method_entry(method)}
    if calibrated(m.backend):  # calibration settings matter to GPTQ and AWQ only
        data = config.get("data", {})
        extra.update(
            calibration=dataset_spec("calibration"),
            calibration_samples=data.get("calibration_samples", 128),
            calibration_seq_len=data.get("calibration_seq_len", 512),
        )
    if method in EXP.replicas:  # its own calibration draw (quantbench.calibration_draw)
        k = EXP.replicas[method][1]
        extra.update(replicate=k, config_seed=SEED, seed=calibration_draw.draw_seed(SEED, k))
    return job_params(variant, **extra)


def measured_mix(method):
    mix = EXP.method(method).params.get("mix") or {}
    return mix if mix and mix.get("rule", "sensitivity") == "sensitivity" else None


def sensitivity_inputs(method):
    """The sensitivity records a mixed-precision method allocates its bits from (none for others)."""
    if not measured_mix(method):
        return []
    return [f"{R}/records/sensitivity/{m}.json" for m in config["sensitivity"]["methods"]]


def size_of_input(method):
    """The quantize record whose measured size is a mix's budget (budget_bits: <method>)."""
    budget = (measured_mix(method) or {}).get("budget_bits")
    return [f"{R}/records/quantize/{budget}.json"] if isinstance(budget, str) and budget != "kquant" else []


def sensitivity_arg(wildcards, input):
    args = f"--sensitivity {' '.join(input.sensitivity)}" if input.sensitivity else ""
    return args + (f" --size-of {input.size_of}" if input.size_of else "")


def sensitivity_params(method):
    spec = {"groups": ["block", "projection", "cell"], "tokens": 8192, **config["sensitivity"]}
    spec.pop("methods")
    batch = config.get("evaluate", {}).get("batch_size", 8)
    return job_params(method, method=method_entry(method), sensitivity=spec, batch_size=batch)


def calibration_arg(method):
    path = data_file("calibration")
    return f"--calibration {path}" if path and calibrated(EXP.method(method).backend) else ""


def evaluate_params(variant):
    ev = {
        "suite": "toy",
        "num_fewshot": None,
        "limit": None,
        "batch_size": 8,
        "max_length": None,
        "fewshot_seed": 1234,
        "distribution_tokens": 4096,
        "distribution_window": 128,
        **config.get("evaluate", {}),
    }
    # The resolved task list is part of the params: the dry run shows it, and a suite change reruns.
    tasks = [f"{e['task']}:{suites.fewshot(e, ev['num_fewshot'])}-shot" for e in suites.suite(ev["suite"])]
    return job_params(variant, evaluate=ev, tasks=tasks, heldout_dataset=dataset_spec("heldout"))


def report_params():
    from quantbench.report.params import report_params as params

    return json.dumps(params(EXP), sort_keys=True)


def report_records(wildcards=None):
    from quantbench.report.params import record_paths

    return record_paths(EXP, R)


def report_figures():
    from quantbench.report.figures import wanted
    from quantbench.report.params import benchmarked, stages

    return wanted(stages(EXP), benchmarked(EXP))
