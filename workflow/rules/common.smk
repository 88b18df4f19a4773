# Config loading, validation and the input functions every stage shares.
import json
import os
import re

from snakemake.logging import logger


include: "setup.smk"


from quantbench import numerics  # noqa: E402

# Every job runs the kernels an AVX2 CPU runs, whatever this CPU has beyond (quantbench.numerics:
# the instruction set changes the bits of every stage); a variable set by the user is kept.
# Benchmarks undo what was set here (NATIVE_KERNELS): their timings are of this machine's own kernels.
PINNED_HERE = numerics.pin_kernels(os.environ)
NATIVE_KERNELS = "env " + " ".join(f"-u {k}" for k in PINNED_HERE) + " " if PINNED_HERE else ""

from quantbench import backends  # noqa: E402
from quantbench import code_inputs, config_messages, experiment, package_paths, source_checks, validation  # noqa: E402
from quantbench.backends import calibrated, host_cpu_lane  # noqa: E402
from quantbench.encoder import checks as encoder_checks  # noqa: E402

# The whole config is checked before any job runs: its shape (setup.smk), then semantics and the
# files it names.
try:
    check_schema()
    # The model's kind first: checks that read the model (context length, layer names) would only
    # report consequences of a BERT folder given here.
    kind_problems = encoder_checks.kind_errors(config, os.getcwd())
    if kind_problems:
        raise config_messages.ConfigError(kind_problems)
    gpu = cuda_capability_for_validation()
    EXP = validation.load(config, cuda_for_validation(), os.getcwd(), workflow.basedir, cuda_capability=gpu)
except config_messages.ConfigError as err:
    raise WorkflowError(str(err)) from None
warn_planning_without_cuda()
for note in EXP.notes:
    logger.warning(f"config: {note}")
for name, why in EXP.skipped.items():
    logger.warning(f"config: skipping method {name}: {why} (unsupported_methods: skip; the report lists it)")
# Every job's record carries this hash of the whole config (through the environment, not params:
# a params change would rerun every job).
os.environ.update(QUANTBENCH_CONFIG_HASH=experiment.config_hash(config))

R = f"results/{EXP.model_name}"
# Relative to the working directory: input paths are part of Snakemake's rerun triggers, so an
# absolute path would rerun every job after the checkout moves.
SCRIPTS = os.path.relpath(f"{workflow.basedir}/workflow/scripts")
BASELINE = EXP.methods[EXP.baseline]
DTYPE = BASELINE.params["dtype"]
DEVICE = config.get("device", "cpu")
SEED = config.get("seed", 0)
RESOURCES = config.get("resources") or {}
MODEL_SIZE = planned_model_size()  # CORES and MAX_THREADS: setup.smk


def library(script, *backends):
    """The quantbench files a job of workflow/scripts/<script> runs, and those of the backends it
    loads by name: inputs, so that editing the library reruns exactly the jobs that run the edited
    code (and what depends on them). Relative to the working directory, like SCRIPTS."""
    files = code_inputs.modules(
        f"{workflow.basedir}/workflow/scripts/{script}", workflow.basedir, tuple(sorted(set(backends)))
    )
    return [os.path.relpath(f) for f in files]


def serving_method(variant):
    """The method whose backend loads a variant's model folder (Experiment.serving_method)."""
    return EXP.serving_method(experiment.parse_variant(variant))


def serving_backend(variant):
    return serving_method(variant).backend


def on_host_lane(method):
    """Whether a method's jobs run on the host's cores even in a CUDA setup (Backend.host_cpu_lane:
    llama.cpp's CPU backend, unless the method's offload puts its layers on the GPU)."""
    return host_cpu_lane(method.backend, method.params)


# On a CUDA setup, a method of the host's CPU lane (llama.cpp on the CPU) runs beside the GPU jobs: its
# jobs and the reference they are scored against start first, so the slow CPU lane is not left for last.
HOST_LANE_FIRST = DEVICE == "cuda" and any(on_host_lane(EXP.methods[m]) for m in EXP.runnable)
HOST_LANE_PRIORITY = 10 if HOST_LANE_FIRST else 0


def host_lane_priority(method):
    return HOST_LANE_PRIORITY if on_host_lane(method) else 0


# Every evaluation is scored against the baseline's reference log-probs: the baseline's quantize job and
# that reference start before anything else, on any device (a CUDA run whose baseline started after 390 s
# of quantize jobs held every evaluation back until 623 s: results/reference/h100/smollm2-135m-cuda-dag/).
BASELINE_PRIORITY = 20
# The recipe (quantize its base, fine-tune, merge, re-quantize, then evaluate and benchmark what it made)
# is the DAG's longest chain of jobs: its jobs start as soon as they can, so it does not end the run alone.
RECIPE_PRIORITY = 5


def recipe_lane_priority(method):
    """Priority of a job on a recipe's chain before the merge (the quantize of the base it fine-tunes,
    the fine-tune, the merges): the recipe's, or the host lane's where the chain feeds a re-quantization
    for the host's CPU lane. Snakemake's priorities do not pass to a job's inputs, so each job names its own."""
    found = 0
    for r in config.get("recipes", []):
        if r["finetune_on"] != method:
            continue
        targets = [t for t in experiment.requantize_targets(r) if t in EXP.methods]
        host = any(on_host_lane(EXP.methods[t]) for t in targets)
        found = max(found, HOST_LANE_PRIORITY if host else 0, RECIPE_PRIORITY)
    return found


def quantize_priority(method):
    if method == EXP.baseline:
        return BASELINE_PRIORITY
    return max(host_lane_priority(EXP.method(method)), recipe_lane_priority(method))


def reference_priority(variant):
    """The baseline's reference first; a recipe's reference (its fine-tuned model's, against which the
    merged and re-quantized models are scored) with the recipe, or with the host lane it feeds."""
    if variant == EXP.baseline:
        return BASELINE_PRIORITY
    return max(HOST_LANE_PRIORITY, RECIPE_PRIORITY)


def variant_priority(variant, other=0):
    """An evaluate or benchmark job: a recipe's merged or re-quantized variant with the recipe (the end
    of its chain), else `other`."""
    return max(other, RECIPE_PRIORITY if experiment.parse_variant(variant).merge else 0)


def conda_env(backend):
    """One conda env per backend for --software-deployment-method conda (envs/*.yaml)."""
    return os.path.join(workflow.basedir, "envs", f"{backend}.yaml")


def backend_env(backend):
    """The env of a backend's jobs: its own, or the one it shares (Backend.ENV)."""
    return conda_env(backends.get(backend).env)


def variant_env(wildcards):
    """The env that can load a variant: that of the backend serving it."""
    v = experiment.parse_variant(wildcards.variant)
    return backend_env(EXP.serving_method(v).backend)


# what the serving engines read (quantbench.engines); the builtin benchmark's params leave these out, so
# that adding an engine reruns no builtin benchmark
ENGINE_KEYS = ("engines", "engine_cells", "vllm")


def benchmark_spec(engine=None):
    spec = config.get("benchmark")
    if not spec:
        return spec
    if engine is None:
        return {k: v for k, v in spec.items() if k not in ENGINE_KEYS}
    return {k: v for k, v in spec.items() if k in ENGINE_KEYS[1:]}


def engine_env(wildcards):
    """vLLM's jobs run in its own env (envs/vllm.yaml); llama.cpp's and builtin's in the variant's backend's."""
    return conda_env("vllm") if wildcards.engine == "vllm" else variant_env(wildcards)


def method_env(wildcards):
    return backend_env(EXP.method(wildcards.method).backend)


# The stage each rule's requests are derived for (quantbench/resources.py); data and report jobs are light.
STAGES = {
    "build_random_model": "build",
    "build_gguf_base": "build",
    "build_toy_model": "build",
    "quantize": "quantize",
    "requantize": "quantize",
    "finetune": "finetune",
    "merge": "merge",
    "reference_logprobs": "reference_logprobs",
    "evaluate": "evaluate",
    "benchmark": "benchmark",
    "sensitivity": "sensitivity",
}


def job_resources(name, uses_model=True, backend=None):
    """Per-job requests (quantbench.resources.job_request) for the rule's stage; `backend`: a
    function of the job's wildcards naming the backend a quantize job runs (its runtime depends on it)."""
    stage = STAGES.get(name, "light") if uses_model or name.startswith("build_") else "light"

    def request(backend_name=None):
        return requests.job_request(
            name,
            stage,
            config=config,
            size=MODEL_SIZE,
            uses_model=uses_model,
            environ=os.environ,
            backend=backend_name,
        )

    res = request()
    if backend:
        res["runtime"] = lambda wildcards: request(backend(wildcards))["runtime"]
    return res


# A job that loads a model on CUDA runs on a GPU slot of its own (quantbench/gpu_slot.py): Snakemake
# counts GPU jobs (--resources gpu=N), the slot names the GPU; `jobs_per_gpu` slots per GPU; a
# benchmark that is exclusive takes every slot of its GPU. Under SLURM the scheduler's choice stands.
JOBS_PER_GPU = config.get("jobs_per_gpu", 1)


def gpu_prefix(alone=False):
    if DEVICE != "cuda":
        return ""
    return f"python -m quantbench.gpu_slot --share {JOBS_PER_GPU}{' --alone' if alone else ''} -- "


ON_GPU = gpu_prefix()


RESOURCE_SETTINGS = ("gpu_model", "slurm_partition", "slurm_account")


def check_resource_keys():
    """A `resources:` entry names a rule; a misspelt one (quantise) would leave its rule at the
    defaults without a word. Called once every rule is defined."""
    rules = sorted({r.name for r in workflow.rules} | {"default"})
    bad = [
        f"resources.{k}: not one of the workflow's rules;{config_messages.did_you_mean(k, rules)} "
        f"allowed: {', '.join(rules)} (or a setting: {', '.join(RESOURCE_SETTINGS)})"
        for k in RESOURCES
        if k not in rules and k not in RESOURCE_SETTINGS
    ]
    if bad:
        raise WorkflowError(str(config_messages.ConfigError(bad)))


def alternation(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    method=alternation([*EXP.runnable, *EXP.replicas]),
    base=alternation(EXP.finetune_bases),
    kind="fp|dequant",
    variant=alternation([v.name for v in EXP.variants] + list(EXP.replicas)),


def job_params(variant, **extra):
    """What a job's output depends on, as JSON: params: changes rerun exactly the jobs they affect."""
    return json.dumps(
        {
            "variant": variant,
            "device": DEVICE,
            "dtype": DTYPE,
            "seed": SEED,
            "offline": config.get("offline", True),
            **extra,
        },
        sort_keys=True,
    )


def method_entry(name):
    m = EXP.method(name)
    return {"name": m.name, "backend": m.backend, "params": m.params}


def base_model():
    """The full-precision model every method starts from: a local folder, or a hub id (no input)."""
    source = config["model"]["source"]
    if source in ("toy", "random", "gguf"):
        return f"{R}/models/base"
    return config["model"]["path"]


# Files inside installed packages (pkg:<package>/<path>) are resolved here, once, to real paths.
GGUF_FILE = package_paths.resolve(config["model"]["path"]) if config["model"]["source"] == "gguf" else None
DATA_SOURCE = config.get("data", {}).get("source", "toy")
WORDNET_DIR = (
    package_paths.resolve(config["data"].get("wordnet", {}).get("path", source_checks.WORDNET_DEFAULT))
    if DATA_SOURCE == "wordnet"
    else None
)


def base_model_input(wildcards=None):
    path = base_model()
    return [path] if config["model"]["source"] != "pretrained" or os.path.isdir(path) else []


def data_file(kind):
    """A toy data file, or the configured dataset spec (passed to the job as a parameter)."""
    if DATA_SOURCE in ("toy", "wordnet"):  # written by build_toy_data / build_wordnet_data
        return f"{R}/data/{kind}.jsonl"
    return None


def data_input(kind):
    path = data_file(kind)
    return [f"{R}/data"] if path else []


def dataset_spec(kind):
    return None if data_file(kind) else config["data"][kind]


def variant_inputs(wildcards):
    """The model folder (and adapter) a variant is loaded from."""
    v = experiment.parse_variant(wildcards.variant)
    if v.lora and not v.merge:
        return {"model": f"{R}/models/{v.base}", "adapter": f"{R}/adapters/{v.base}+lora"}
    return {"model": f"{R}/models/{v.name}"}


def adapter_arg(wildcards, input):
    return f"--adapter {input.adapter}" if "adapter" in input.keys() else ""


# Speed-only setups (random weights) leave `evaluate:` out: quality is meaningless there.
EVALUATE = bool(config.get("evaluate"))
# The torch threads of a job whose outputs are numbers (training, fine-tuning, a base model's
# weights): the config's max_threads, not capped by this machine's cores as MAX_THREADS is, since
# the order of float sums in some kernels (MKL's Cholesky in GPTQ, torch's whole-tensor sums)
# follows the thread count. On fewer cores such a job oversubscribes: slower, same numbers.
# Quantize, merge and evaluate jobs run one thread everywhere (Snakemake's default). Speed-only
# setups (no evaluate:) keep MAX_THREADS: their numbers are not the point, and max_threads: 1024
# there means "every core".
JOB_THREADS = config.get("max_threads", 8) if EVALUATE else MAX_THREADS


def get_final_output():
    """Every record the report reads is a target of its own: Snakemake takes a missing file whose
    consumers are up to date for a deleted intermediate and leaves it, so a deleted quantize record
    would never be made again while the report kept showing it (report_records: report.smk)."""
    return report_records() + [f"{R}/report/report.md"]


include: "stage_functions.smk"
