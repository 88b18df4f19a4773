"""What each job asks of a scheduler: host memory, wall time, CPUs and GPUs, derived from the model's
size (parameters and dtype, known when the workflow is planned) and the job's stage, then overridden
by the config's `resources:` section.

The figures are generous upper bounds, not predictions: a job killed at its time or memory limit
costs a whole retry, one that asks for too much only waits longer in the queue. Where they come
from: a model's weights take parameters x bytes per parameter; loading through transformers holds
about one more copy on the host while tensors are converted (PITFALLS: SmolLM2's 135 M parameters
load in ~22 s on the CPU); GPTQ and AWQ hold the whole model on the host and calibrate layer by layer
(a 7B GPTQ quantization took 99 s on an H200 at 32 samples, about an hour at 128 samples on older
GPUs); lm-eval keeps its datasets in memory. No torch is imported here: the submit host plans jobs.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from quantbench import backends
from quantbench.backends.base import Backend
from quantbench.benchmark_grid import generate_grid

BYTES_PER_PARAMETER = {"float32": 4, "float16": 2, "bfloat16": 2}
# Threads a job asks for where no --cores bounds it (a cluster executor): a workstation's
# max_threads (the llama2 configs say 1024, meaning "every core") must never become a request.
DEFAULT_JOB_CPUS = 8


@dataclass(frozen=True)
class ModelSize:
    parameters: int
    bytes_per_parameter: int
    where: str  # what the size was read from, for the dry run's table

    @property
    def weights_gb(self) -> float:
        return self.parameters * self.bytes_per_parameter / 1e9

    @property
    def billions(self) -> float:
        return self.parameters / 1e9


def parameters_of(arch: dict) -> int | None:
    """Parameters of a transformer from its config.json keys (decoder or encoder): embeddings,
    attention with grouped KV heads, a gated (Llama-style: 3 matrices) or plain (2) MLP per layer,
    and an output head unless tied. None when a key it needs is missing."""
    hidden, inter, layers = arch.get("hidden_size"), arch.get("intermediate_size"), arch.get("num_hidden_layers")
    vocab = arch.get("vocab_size")
    if not all(isinstance(v, int) and v > 0 for v in (hidden, inter, layers, vocab)):
        return None
    heads = arch.get("num_attention_heads") or 1
    head_dim = arch.get("head_dim") or hidden // heads
    kv = (arch.get("num_key_value_heads") or heads) * head_dim
    attention = hidden * heads * head_dim * 2 + hidden * kv * 2
    gated = arch.get("model_type", "llama") not in ("bert", "roberta", "gpt2", "distilbert")
    mlp = hidden * inter * (3 if gated else 2)
    head = 0 if arch.get("tie_word_embeddings", True) else vocab * hidden
    return vocab * hidden + layers * (attention + mlp) + head


def model_size(config: dict, basedir: str = ".", workdir: str = ".") -> ModelSize | None:
    """The base model's size as the workflow will build or load it; None when nothing local tells
    (a hub id that is not in the cache): requests then fall back to the config's or the defaults."""
    model = config.get("model") or {}
    source = model.get("source")
    methods = config.get("methods") or {}
    dtype = (methods.get(config.get("baseline")) or {}).get("dtype", "float32")
    per = BYTES_PER_PARAMETER.get(dtype, 4)
    if source == "toy":
        toy = {"model_type": "llama", "tie_word_embeddings": True, **(model.get("toy") or {})}
        n = parameters_of(toy)
        return ModelSize(n, per, "model.toy") if n else None
    if source == "gguf":
        from quantbench import gguf_source, package_paths

        try:
            path = Path(package_paths.resolve(model["path"]))
            info = gguf_source.inspect(path if path.is_absolute() else Path(workdir) / path)
        except (gguf_source.GGUFError, FileNotFoundError, KeyError):
            return None
        return ModelSize(info.parameters, per, model["path"])
    if source in ("random", "pretrained"):
        arch = _config_json(model.get("architecture") if source == "random" else model.get("path"), basedir, workdir)
        if arch is None:
            return None
        if source == "random" and isinstance(model.get("num_hidden_layers"), int):
            arch = {**arch, "num_hidden_layers": model["num_hidden_layers"]}
        n = parameters_of(arch)
        return ModelSize(n, per, str(model.get("architecture") or model.get("path"))) if n else None
    return None


ASSUMED_PARAMETERS = 7_000_000_000


def planned_size(config: dict, basedir: str = ".", workdir: str = ".") -> tuple[ModelSize, str | None]:
    """model_size(), or a 7B model at the baseline's dtype when nothing local tells the size, with
    the note that says so (requests for an unknown model must still let a 7B model finish)."""
    size = model_size(config, basedir, workdir)
    if size is not None:
        return size, None
    methods = config.get("methods") or {}
    dtype = (methods.get(config.get("baseline")) or {}).get("dtype", "float32")
    where = (config.get("model") or {}).get("path")
    return (ModelSize(ASSUMED_PARAMETERS, BYTES_PER_PARAMETER.get(dtype, 4), "assumed"),
            f"model.path: the size of {where!r} is not known here (not local, not in the hub cache): "
            "job requests are sized for a 7B model; set resources: to change them")


def _config_json(path, basedir: str, workdir: str) -> dict | None:
    if not isinstance(path, str) or not path:
        return None
    if path.startswith("pkg:"):
        from quantbench import package_paths

        try:
            path = package_paths.resolve(path)
        except FileNotFoundError:
            return None
    for root in (workdir, basedir):
        p = Path(root) / path
        if p.is_dir():
            p = p / "config.json"
        if p.is_file():
            try:
                return json.loads(p.read_text())
            except (OSError, ValueError):
                return None
    try:  # a hub id whose config.json is in the local cache
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(path, "config.json")
        return json.loads(Path(cached).read_text()) if isinstance(cached, str) else None
    except Exception:  # an id huggingface_hub rejects, or no hub library: size unknown
        return None


# Host memory: copies of the base model's weights a stage holds at once, plus a fixed part (GB).
MEMORY = {
    "build": (2.0, 2), "quantize": (2.0, 4), "finetune": (1.5, 6), "merge": (3.0, 4),
    "reference_logprobs": (1.5, 4), "evaluate": (1.5, 8), "benchmark": (1.5, 4), "light": (0.0, 2),
    "sensitivity": (2.5, 4),  # the baseline and the quantized model side by side
}
# On a CPU the weights are the working memory too (activations, fp32 upcasts): one more copy.
CPU_EXTRA_COPIES = 1.0
# Wall time: a fixed part and minutes per billion parameters, on a GPU; a CPU is slower by CPU_SLOWER
# (SmolLM2's evaluation: ~10 core-minutes for 0.135 B parameters on our 2-core machine).
MINUTES = {
    "build": (10, 4), "finetune": (20, 10), "merge": (15, 5), "reference_logprobs": (10, 5),
    "evaluate": (20, 10), "benchmark": (15, 0), "light": (15, 0), "sensitivity": (20, 20),
}
SUITE_MINUTES = {"leaderboard-v1": (60, 40), "leaderboard-v2": (60, 60)}  # big suites; others: "evaluate"
CPU_SLOWER = 20


def memory_mb(stage: str, size: ModelSize, device: str) -> int:
    copies, fixed_gb = MEMORY[stage]
    if stage == "light":
        return int(fixed_gb * 1000)
    if device == "cpu":
        copies += CPU_EXTRA_COPIES
    return int(math.ceil(copies * size.weights_gb + fixed_gb)) * 1000


def _quantize_minutes(backend: str | None) -> tuple[int, int]:
    """A quantize job's (fixed, per billion) minutes: its backend's (Backend.QUANTIZE_MINUTES); the
    unquantized baseline's when none is named, the contract's default for a name not registered."""
    name = backend or backends.UNQUANTIZED
    return backends.get(name).QUANTIZE_MINUTES if name in backends.names() else Backend.QUANTIZE_MINUTES


def runtime_min(stage: str, size: ModelSize, device: str, *, backend: str | None = None,
                suite: str | None = None, benchmark: dict | None = None) -> int:
    fixed, per_billion = (_quantize_minutes(backend) if stage == "quantize"
                          else SUITE_MINUTES.get(suite or "", MINUTES["evaluate"]) if stage == "evaluate"
                          else MINUTES[stage])
    billions = size.billions
    variable = per_billion * billions
    if stage == "benchmark" and benchmark:
        # twice the estimate: the per-token figure is a GPU like ours; older ones decode slower
        variable += 2 * benchmark_seconds(benchmark, billions, device) / 60
    if device == "cpu":
        variable *= CPU_SLOWER
    return int(math.ceil((fixed + variable) / 5) * 5)


def benchmark_seconds(spec: dict, billions: float, device: str) -> float:
    """Estimate of a benchmark job's timed work: every generated token of every cell, each cell run
    warmup + repeats times and measured again up to spread_retries times, plus compilation. Per token: eager
    decode on a GPU is host-bound (~1 ms per layer, ~40 ms on Llama-2-7b); a CPU reads every weight."""
    per_token_s = 0.03 + 0.002 * billions if device == "cuda" else 0.01 + 0.5 * billions
    runs = (spec.get("warmup", 1) + spec.get("repeats", 3)) * (1 + spec.get("spread_retries", 0))
    gen = spec.get("generate") or {}
    prefill = spec.get("prefill") or {}
    tokens = len(prefill.get("batch_sizes", [])) * 4  # a prefill costs about a few decode steps
    cells = len(prefill.get("batch_sizes", []))
    # each compiled or captured mode first compiles and records (minutes per mode on a 7B model)
    compile_s = 300 * len([m for m in gen.get("modes", ["eager"]) if m != "eager"])
    if gen:
        for mode in gen.get("modes", ["eager"]):
            grid = generate_grid(gen, mode)
            # a step without the KV cache recomputes the whole sequence: count it twice
            tokens += sum(n if cache else 2 * n for _, n, cache in grid)
            cells += len(grid)
        tokens += sum(gen.get("adapters", {}).get("new_tokens", []))
    # a cell cheaper than min_timed_s is called until its timed calls reach it
    floor_s = cells * spec.get("min_timed_s", 0) * (1 + spec.get("spread_retries", 0))
    return tokens * runs * per_token_s + compile_s + floor_s


def job_request(rule: str, stage: str, *, config: dict, size: ModelSize, uses_model: bool, environ: dict,
                backend: str | None = None) -> dict:
    """One job's requests as Snakemake resources: memory and runtime derived for its stage unless the
    config's `resources:` sets them (its `default` entry, then the rule's own); a GPU (and its model,
    if named) for a job that loads a model when device is cuda; the whole node for a benchmark that
    runs exclusive; SLURM partition and account from the config or QB_SLURM_PARTITION /
    QB_SLURM_ACCOUNT; more sbatch options from slurm_extra."""
    settings = config.get("resources") or {}
    entry = {**settings.get("default", {}), **settings.get(rule, {})}
    device = config.get("device", "cpu")
    res = {"mem_mb": entry.get("mem_mb") or memory_mb(stage, size, device),
           "runtime": entry.get("runtime") or runtime_min(
               stage, size, device, backend=backend, suite=(config.get("evaluate") or {}).get("suite"),
               benchmark=config.get("benchmark")),
           "gpu": entry.get("gpus", 1) if uses_model and device == "cuda" else 0}
    if res["gpu"] and settings.get("gpu_model"):
        res["gpu_model"] = settings["gpu_model"]
    for key, env in (("slurm_partition", "QB_SLURM_PARTITION"), ("slurm_account", "QB_SLURM_ACCOUNT")):
        value = environ.get(env) or settings.get(key)
        if value:
            res[key] = value
    extra = [entry["slurm_extra"]] if entry.get("slurm_extra") else []
    if stage == "benchmark" and (config.get("benchmark") or {}).get("exclusive", True):
        extra.append("--exclusive")  # the whole node: nothing shares it with a timed run
    if extra:
        res["slurm_extra"] = " ".join(extra)
    return res


def job_cpus(resources: dict) -> int:
    return int((resources.get("default") or {}).get("cpus", DEFAULT_JOB_CPUS))


# --- where the workflow runs: a local run, a dry run, or a submission to a cluster ------------------

LOCAL_EXECUTORS = {None, "local", "dryrun", "touch"}


def executor_named(argv: list[str], environ: dict) -> str | None:
    """The executor a snakemake command line asks for: --executor/-e, else the `executor:` of the
    profile it names (--workflow-profile, --profile or $SNAKEMAKE_PROFILE, as a folder). Snakemake
    has not chosen its executor yet when it reads the Snakefile, so the command line is all there is."""
    def value(*flags):
        for i, arg in enumerate(argv):
            for flag in flags:
                if arg == flag and i + 1 < len(argv):
                    return argv[i + 1]
                if arg.startswith(flag + "="):
                    return arg.split("=", 1)[1]
        return None

    named = value("--executor", "-e")
    if named:
        return named
    for profile in (value("--workflow-profile"), value("--profile"), environ.get("SNAKEMAKE_PROFILE")):
        if profile and (Path(profile) / "config.yaml").is_file():
            import yaml

            found = (yaml.safe_load((Path(profile) / "config.yaml").read_text()) or {}).get("executor")
            if found:
                return found
    return None


def submits_to_cluster(executor: str | None) -> bool:
    """A submitting executor (slurm, ...): its jobs run elsewhere, each in its own allocation."""
    return executor not in LOCAL_EXECUTORS and not executor.endswith("-jobstep")


def is_dry_run(argv: list[str]) -> bool:
    """-n, also among other one-letter flags (-np), or its long spellings."""
    return any(a in ("--dry-run", "--dryrun", "--dry_run") or re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", a)
               for a in argv[1:])
