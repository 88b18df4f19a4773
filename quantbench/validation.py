"""What the schema cannot say about a config: methods and their backends, the device policy,
fine-tune bases and recipes, keys a source ignores; then (with model_facts and source_checks) what
the model, the data and the files allow. `load` is the whole check Snakemake runs before any job;
`build` derives the Experiment once the config is known to be sound.

Just over 300 lines: one function per part of the config, in the order build() runs them; the reads
of anything outside the config live in model_facts and source_checks."""
from __future__ import annotations

import re

from quantbench import cuda_capability, engines
from quantbench.backends import BACKENDS, UNQUANTIZED, calibrated, having, names
from quantbench.backends import get as get_backend
from quantbench.config_messages import ConfigError, did_you_mean, schema_errors
from quantbench.experiment import MERGE_KINDS, Experiment, Method, requantize_targets
from quantbench.model_facts import (
    context_errors,
    head_quantization_errors,
    layer_count_errors,
    lora_target_errors,
    model_dims,
    model_facts,
)
from quantbench.sensitivity_checks import sensitivity_errors, sensitivity_kind_errors
from quantbench.source_checks import file_errors, packaged_source_errors, suite_dataset_errors

# results/<model>/models/base is the full-precision model every method starts from: a method of that
# name would be a second rule writing the same folder.
RESERVED_METHOD_NAMES = ("base",)
FINETUNE_REQUIRED = ("steps", "batch_size", "seq_len", "learning_rate", "lora")
# A method name is a folder (results/<model>/models/<name>) and a part of a variant name joined by '+':
# it starts with a letter or digit, so it is neither '.', '..' nor a command-line flag ('-gptq').
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def _either(backends: list[str]) -> str:
    """'GPTQ, torchao or GGUF': the backends by the names reports give them."""
    labels = [get_backend(b).label for b in backends] or ["(no backend)"]
    return " or ".join([", ".join(labels[:-1]), labels[-1]] if len(labels) > 1 else labels)


def _untrainable(method: Method) -> str | None:
    """Why PEFT cannot train LoRA on this method's layers, or None."""
    return get_backend(method.backend).untrainable(method.params)


def _check_params(key: str, backend: str, entry: dict, errors: list[str]) -> dict:
    mod = get_backend(backend)
    params = {**mod.DEFAULTS, **{k: v for k, v in entry.items() if k != "backend"}}
    for k, v in params.items():
        if k == "mix" and k not in mod.SPEC:  # per-module bit widths need a backend that stores them
            able = [b for b in names() if "mix" in get_backend(b).SPEC]
            errors.append(f"{key}.mix: backend {backend!r} has no per-module settings; allowed: backend "
                          f"{', '.join(able)}")
            continue
        if k not in mod.SPEC:
            errors.append(f"{key}.{k}: unknown parameter for backend {backend!r};{did_you_mean(k, mod.SPEC)} "
                          f"allowed: {', '.join(mod.SPEC)}")
            continue
        allowed = mod.SPEC[k]
        numbers = isinstance(allowed, list) and all(type(a) in (int, float) for a in allowed)
        if isinstance(v, str) and (numbers or allowed in (int, float)):
            # YAML reads `bits: "4"` (or `bits: '4'`) as the string '4', which no backend takes
            what = ", ".join(map(str, allowed)) if numbers else {int: "an integer", float: "a number"}[allowed]
            errors.append(f"{key}.{k}: {v!r} is a string; it must be a number, not a string (write it without "
                          f"quotes); allowed: {what}")
        elif isinstance(allowed, list):
            if v not in allowed or isinstance(v, bool) != isinstance(allowed[0], bool):
                errors.append(f"{key}.{k}: {v!r} is not supported by backend {backend!r}; "
                              f"allowed: {', '.join(map(str, allowed))}")
        elif allowed is float and isinstance(v, int) and not isinstance(v, bool):
            params[k] = float(v)  # an integer is a number: `bits: 4` where a width may be 2.5 too
        elif not isinstance(v, allowed) or isinstance(v, bool):
            errors.append(f"{key}.{k}: {v!r} must be of type {allowed.__name__}")
    for k in mod.REQUIRED:
        if k not in params:
            allowed = mod.SPEC[k]
            what = ", ".join(map(str, allowed)) if isinstance(allowed, list) else \
                {int: "an integer", float: "a number"}.get(allowed, allowed.__name__)
            errors.append(f"{key}.{k}: missing; allowed: {what}")
    return params


def build(config: dict, cuda_available: bool, model_dims: list[int] | None = None,
          workdir: str | None = None, basedir: str | None = None,
          cuda_capability: tuple[int, int] | None = None) -> Experiment:
    """Validate a config's semantics and derive the experiment. Raises ConfigError listing every
    problem, each naming the key, the value and what is allowed. With `workdir` (where jobs run:
    relative data and model paths) and `basedir` (the project: architecture files), the files the
    config names are checked too. `cuda_capability` is the compute capability of the GPU the jobs
    will run on, where this host sees it (None where unknown: the job checks its node). The parts
    run in this order, and each later part only once the earlier ones found nothing it depends on."""
    errors: list[str] = []
    notes: list[str] = []
    methods = _methods(config, model_dims, errors)
    errors += _baseline_errors(config, methods)
    skipped = _device_policy(config, methods, cuda_available, errors, cuda_capability, notes)
    errors += _finetune_errors(config, methods)
    errors += _recipe_errors(config, methods)
    errors += sensitivity_errors(config, methods)
    errors += _generate_mode_errors(config, notes)
    errors += _engine_errors(config, methods, notes)
    errors += _model_errors(config)
    errors += _source_key_errors(config)
    errors += _source_errors(config, methods)
    if not errors:  # what the model and the data hold: read only from a config that is sound so far
        facts = model_facts(config, basedir or ".", workdir)
        errors += context_errors(config, facts)
        errors += layer_count_errors(config, facts)
        errors += head_quantization_errors(methods, facts)
        errors += lora_target_errors(config, methods, facts, notes)
        errors += sensitivity_kind_errors(config, facts, notes)
        errors += suite_dataset_errors(config)
        errors += _calibration_size_errors(config)
    if workdir is not None:
        errors += _file_errors(config, methods, skipped, workdir, basedir, notes)
    if errors:
        raise ConfigError(errors)
    return Experiment(config, methods, skipped, notes)


def _method(name, entry, model_dims: list[int] | None, errors: list[str]) -> Method | None:
    """One `methods:` entry: its name, its backend, its parameters, the backend's own rules."""
    key = f"methods.{name}"
    if not isinstance(name, str):  # YAML reads `8:` as a number
        errors.append(f"{key}: {name!r} is a number, not a name; allowed: a name of lower-case letters, digits, "
                      f"'-', '_' and '.' (quote it, '{name}', or start it with a letter)")
        return None
    if name in RESERVED_METHOD_NAMES:
        errors.append(f"{key}: {name!r} is reserved (results/<model>/models/{name} is the unquantized model every "
                      f"method starts from); allowed: any other name, e.g. {name}-fp32")
        return None
    if not NAME_RE.match(name):
        errors.append(f"{key}: {name!r} is not a method name; allowed: a name that starts with a lower-case letter "
                      "or digit and holds only lower-case letters, digits, '.', '_' and '-' (not '.' or '..'), "
                      "e.g. gptq-4bit-g128")
        return None
    if not isinstance(entry, dict):
        errors.append(f"{key}: must be a mapping with a 'backend' key")
        return None
    backend = entry.get("backend")
    if backend not in names():
        errors.append(f"{key}.backend: {backend!r} is not a backend; allowed: {', '.join(names())}")
        return None
    replicates = _replicates(key, backend, entry, errors)
    params = _check_params(key, backend, {k: v for k, v in entry.items() if k != "replicates"}, errors)
    # What one parameter alone cannot say (a kernel's bits, a group size against the model's
    # layer widths): each backend's own rules, once its parameters are individually valid.
    if not any(e.startswith(key) for e in errors):
        errors += [f"{key}.{p}" for p in get_backend(backend).problems(params, model_dims)]
    return Method(name, backend, params, replicates)


def _replicates(key: str, backend: str, entry: dict, errors: list[str]) -> int:
    """`replicates: N`: N calibration draws of a calibrated method (quantbench.calibration_draw); a
    method option, not a backend parameter, so that a change of N leaves the method's own jobs alone."""
    n = entry.get("replicates", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        errors.append(f"{key}.replicates: {n!r} is not a count of calibration draws; allowed: an integer >= 1")
        return 1
    if n > 1 and not calibrated(backend):
        able = [b for b in BACKENDS if calibrated(b)]
        errors.append(f"{key}.replicates: {n} on backend {backend!r}, which has no calibration draw to repeat; "
                      f"allowed: 1, or more on a calibrated backend ({', '.join(able)})")
        return 1
    return n


def _methods(config: dict, model_dims: list[int] | None, errors: list[str]) -> dict[str, Method]:
    entries = config.get("methods") or {}
    if not entries:
        errors.append("methods: at least one method is required")
    found = {name: _method(name, entry, model_dims, errors) for name, entry in entries.items()}
    return {name: m for name, m in found.items() if m is not None}


def _baseline_errors(config: dict, methods: dict[str, Method]) -> list[str]:
    baseline = config.get("baseline")
    if baseline not in methods:
        return [f"baseline: {baseline!r} is not a method; allowed: {', '.join(methods) or '(none)'}"]
    if methods[baseline].backend != UNQUANTIZED:
        return [f"baseline: {baseline!r} must be an unquantized method (backend: {UNQUANTIZED})"]
    return []


def _device_policy(config: dict, methods: dict[str, Method], cuda_available: bool,
                   errors: list[str], capability: tuple[int, int] | None = None,
                   notes: list[str] | None = None) -> dict[str, str]:
    """Methods this device cannot run: skipped (method -> reason) or, under unsupported_methods:
    error, added to errors. `capability` known means the jobs run on this host's GPU, with the
    libraries installed here: a library built without its GPU backend (Backend.gpu_unavailable) is
    then refused like a missing one; where the GPU is elsewhere it is noted, and the job checks."""
    device = config.get("device", "cpu")
    skipped: dict[str, str] = {}
    policy = config.get("unsupported_methods", "skip")
    if device == "cuda" and not cuda_available:
        errors.append("device: 'cuda' but this machine shows no CUDA device (no nvidia-smi); allowed here: cpu "
                      "(to plan a GPU run on a CPU-only submit host, set QUANTBENCH_ASSUME_CUDA=1)")
    for name, method in methods.items():
        if errors:
            break
        mod = get_backend(method.backend)
        # A library this environment lacks (llama.cpp is an opt-in install) stops or skips a method
        # on any device; a CUDA-only kernel does on a CPU run, a CPU-only one (AWQ's torch_fused)
        # on a CUDA run.
        missing = mod.unavailable(method.params)
        if not missing and device == "cuda":
            no_gpu_build = mod.gpu_unavailable(method.params)
            if no_gpu_build and capability is not None:
                missing = no_gpu_build
            elif no_gpu_build and notes is not None:
                notes.append(f"methods.{name}: here, {no_gpu_build}; this host plans for a GPU elsewhere, whose "
                             "jobs check their own build when they load the model")
        if missing:
            why, instead = missing, ""
        elif device == "cuda":
            why, instead = mod.needs_cpu(method.params), mod.CUDA_ALTERNATIVE
            if not why:  # a kernel that needs a newer GPU (FP8 matmuls: 8.9)
                why = cuda_capability.problem(mod.min_cuda_capability(method.params), capability,
                                              f"{method.backend} method {name!r}")
                instead = "a method without that need (e.g. an int8 or 4-bit one)" if why else instead
        else:
            why, instead = method.needs_cuda(), mod.CPU_ALTERNATIVE
        if why:
            if policy == "error" and missing:
                errors.append(f"methods.{name}: {missing} (or set unsupported_methods: skip to record it as skipped)")
            elif policy == "error":
                errors.append(f"methods.{name}: {why}, and device is {device!r}; allowed with device {device}: "
                              f"{instead or 'another method'} (or set unsupported_methods: skip to record it as "
                              "skipped)")
            else:
                skipped[name] = why
    return skipped


def _finetune_errors(config: dict, methods: dict[str, Method]) -> list[str]:
    ft, errors = config.get("finetune") or {}, []
    for i, b in enumerate(ft.get("bases", [])):
        if b not in methods:
            errors.append(f"finetune.bases[{i}]: {b!r} is not a method; allowed: {', '.join(methods)}")
        elif _untrainable(methods[b]):
            errors.append(f"finetune.bases[{i}]: {b!r} cannot be fine-tuned: {_untrainable(methods[b])}; allowed: "
                          f"{', '.join(n for n, m in methods.items() if not _untrainable(m))}")
    return errors


def _recipe_errors(config: dict, methods: dict[str, Method]) -> list[str]:
    """Each recipe's base, merge kinds and re-quantize targets; then the fine-tune keys recipes need."""
    ft, recipes, errors = config.get("finetune") or {}, config.get("recipes") or [], []
    for i, r in enumerate(recipes):
        key = f"recipes[{i}]"
        if r.get("finetune_on") not in methods:
            errors.append(f"{key}.finetune_on: {r.get('finetune_on')!r} is not a method; "
                          f"allowed: {', '.join(methods)}")
            continue
        if _untrainable(methods[r["finetune_on"]]):
            errors.append(f"{key}.finetune_on: {r['finetune_on']!r} cannot be fine-tuned: "
                          f"{_untrainable(methods[r['finetune_on']])}")
        for kind in r.get("merge_into", []):
            if kind not in MERGE_KINDS:
                errors.append(f"{key}.merge_into: {kind!r}; allowed: {', '.join(MERGE_KINDS)}")
            elif kind == "dequant" and not get_backend(methods[r["finetune_on"]].backend).can_dequantize:
                able = [b for b in BACKENDS if get_backend(b).can_dequantize]
                errors.append(f"{key}.merge_into: 'dequant' needs a base whose backend can dequantize "
                              f"({', '.join(able)}); {r['finetune_on']!r} uses backend "
                              f"{methods[r['finetune_on']].backend!r}")
        for rq in requantize_targets(r):
            targets = having("REQUANTIZE_TARGET")
            if rq not in methods or methods[rq].backend not in targets:
                allowed = [m for m, x in methods.items() if x.backend in targets]
                errors.append(f"{key}.requantize: {rq!r} must be a {_either(targets)} method; "
                              f"allowed: {', '.join(allowed) or '(none)'}")
    if ft.get("bases") or recipes:
        for k in FINETUNE_REQUIRED:
            if k not in ft:
                errors.append(f"finetune.{k}: missing; required when finetune.bases or recipes are set")
        lora = ft.get("lora") or {}
        if "lora" in ft and "target_modules" not in lora:
            errors.append("finetune.lora.target_modules: missing; name the linear layers, e.g. [q_proj, k_proj, "
                          "v_proj, o_proj, gate_proj, up_proj, down_proj] (PEFT's 'all-linear' misses GPTQ layers)")
    return errors


def _file_errors(config: dict, methods: dict[str, Method], skipped: dict[str, str], workdir: str,
                 basedir: str | None, notes: list[str]) -> list[str]:
    """The files the config names, and the data files the stages that run need."""
    ft = config.get("finetune") or {}
    calibrates = any(calibrated(m.backend) for n, m in methods.items() if n not in skipped)
    needs = {"calibration": calibrates, "finetune": bool(ft.get("bases") or config.get("recipes")),
             "heldout": bool(config.get("evaluate"))}
    return (file_errors(config, needs, workdir, basedir or workdir, notes)
            + packaged_source_errors(config, workdir))


# Generate modes that run our own decode loop replayed as CUDA graphs (quantbench.benchmark.DECODER_MODES;
# named here too so that validation does not import torch).
CUDA_GENERATE_MODES = ("compiled", "graphs", "fused")


def _generate_mode_errors(config: dict, notes: list[str]) -> list[str]:
    """CUDA-graph generate modes on a CPU run: refused under unsupported_methods: error; under skip,
    noted here and recorded by the benchmark as unsupported cells with the reason."""
    if config.get("device", "cpu") == "cuda":
        return []
    gen = (config.get("benchmark") or {}).get("generate") or {}
    found = [(f"benchmark.generate.modes[{i}]", m) for i, m in enumerate(gen.get("modes") or [])]
    found += [(f"benchmark.generate.adapters.modes[{i}]", m)
              for i, m in enumerate((gen.get("adapters") or {}).get("modes") or [])]
    found = [(k, m) for k, m in found if m in CUDA_GENERATE_MODES]
    if config.get("unsupported_methods", "skip") == "error":
        return [f"{k}: {m!r} replays CUDA graphs, and device is 'cpu'; allowed with device cpu: eager, static "
                "(or set unsupported_methods: skip to record its cells as unsupported)" for k, m in found]
    notes += [f"{k}: {m!r} replays CUDA graphs: its cells are recorded as unsupported on device 'cpu'"
              for k, m in found]
    return []


def _engine_errors(config: dict, methods: dict[str, Method], notes: list[str]) -> list[str]:
    """benchmark.engines: builtin among them (every engine's cells are read beside quantbench's own), vllm
    only on a CUDA device; an engine with nothing to load here is noted."""
    wanted = (config.get("benchmark") or {}).get("engines")
    if not wanted:
        return []
    errors = []
    if "builtin" not in wanted:
        errors.append(f"benchmark.engines: {wanted} leaves out 'builtin'; allowed: a list that includes 'builtin' "
                      "(the report sets each engine's cells beside quantbench's own)")
    if "vllm" in wanted and config.get("device", "cpu") != "cuda":
        errors.append(f"benchmark.engines[{wanted.index('vllm')}]: 'vllm' runs on a CUDA GPU, and device is "
                      f"{config.get('device', 'cpu')!r}; allowed with device cpu: builtin, llamacpp")
    mode = ((config.get("benchmark") or {}).get("engine_cells") or {}).get("builtin_mode", "eager")
    if mode in CUDA_GENERATE_MODES and config.get("device", "cpu") != "cuda":
        errors.append(f"benchmark.engine_cells.builtin_mode: {mode!r} replays CUDA graphs, and device is "
                      f"{config.get('device', 'cpu')!r}; allowed with device cpu: eager, static")
    for engine in engines.external(wanted):
        if all(engines.serves(engine, m.backend) for m in methods.values()):
            notes.append(f"benchmark.engines: {engine!r} can load none of this config's methods: no {engine} cells")
    return errors


def _model_errors(config: dict) -> list[str]:
    model = config.get("model") or {}
    source, errors = model.get("source"), []
    if source == "pretrained" and not model.get("path"):
        errors.append("model.path: missing; source 'pretrained' needs a hub id (org/name) or a local model folder")
    if source == "gguf" and not model.get("path"):
        errors.append("model.path: missing; source 'gguf' needs a .gguf file (or pkg:<package>/<file>.gguf)")
    if source == "random" and not model.get("architecture"):
        errors.append("model.architecture: missing; source 'random' needs a config.json of a real architecture "
                      "(e.g. config/architectures/llama-2-7b.json)")
    toy = model.get("toy") or {}
    if source == "toy" and not toy:
        errors.append("model.toy: missing; source 'toy' needs the toy model's sizes and training "
                      "(copy the model.toy block of config/config.yaml)")
    heads, width = toy.get("num_attention_heads"), toy.get("hidden_size")
    if source == "toy" and isinstance(heads, int) and isinstance(width, int) and heads > 0 and width % heads:
        errors.append(f"model.toy.hidden_size: {width} is not divisible by num_attention_heads {heads}; "
                      f"allowed: a multiple of {heads}")
    return errors


_BUILDS = {"pretrained": "loads the model and its architecture from model.path",
           "gguf": "loads the model and its architecture from the GGUF file in model.path",
           "random": "builds the model from model.architecture"}


def _source_key_errors(config: dict) -> list[str]:
    """Keys the chosen source ignores (the user believes they are used), and sources that do not fit."""
    model, data = config.get("model") or {}, config.get("data") or {}
    errors = []
    if model.get("source") == "toy":
        for key, other in (("path", "pretrained or gguf"), ("architecture", "random")):
            if key in model:
                errors.append(f"model.{key}: given while model.source is 'toy', which builds its own model; "
                              f"remove it, or set model.source: {other}")
    if model.get("source") in ("pretrained", "gguf", "random"):
        # pretrained and gguf read the model's architecture from its own files; random from model.architecture
        ignored = ([("toy", "toy")] + ([] if model["source"] == "random" else [("architecture", "random")]))
        for key, other in ignored:
            if key in model:
                errors.append(f"model.{key}: given while model.source is {model['source']!r}, which "
                              f"{_BUILDS[model['source']]}; remove it, or set model.source: {other}")
    if "num_hidden_layers" in model and model.get("source") != "random":
        where = ("model.toy.num_hidden_layers sets the toy's depth" if model.get("source") == "toy"
                 else f"source {model.get('source')!r} loads every layer of the model")
        errors.append(f"model.num_hidden_layers: given while model.source is {model.get('source')!r} ({where}); "
                      "it truncates only a random architecture; remove it, or set model.source: random with "
                      "model.architecture: the model's config.json")
    data_source = data.get("source", "toy")
    if data_source == "toy":
        for kind in ("calibration", "finetune", "heldout"):
            if data.get(kind) is not None:
                errors.append(f"data.{kind}: given while data.source is 'toy', which writes its own; "
                              "remove it, or set data.source: files")
        if model.get("source") in ("pretrained", "gguf") and model.get("kind", "causal-lm") == "causal-lm":
            errors.append(f"data.source: 'toy' is built only with a toy or random model (model.source is "
                          f"{model['source']!r}); allowed with this model: files, wordnet")
    return errors


def _source_errors(config: dict, methods: dict[str, Method]) -> list[str]:
    """Methods whose backend cannot quantize a model of this model.source (Backend.source_problem)."""
    source = (config.get("model") or {}).get("source", "toy")
    return [f"methods.{name}: {why}" for name, m in methods.items()
            if (why := get_backend(m.backend).source_problem(source))]


def _calibration_size_errors(config: dict) -> list[str]:
    """calibration_samples beyond the texts the toy data holds (a file's rows are counted with the files)."""
    from quantbench.toy.data import CALIBRATION_TEXTS

    data = config.get("data") or {}
    wanted = data.get("calibration_samples")
    if data.get("source", "toy") != "toy" or not isinstance(wanted, int) or wanted <= CALIBRATION_TEXTS:
        return []
    return [f"data.calibration_samples: {wanted} is more than the {CALIBRATION_TEXTS} calibration texts the toy "
            f"data holds; allowed: at most {CALIBRATION_TEXTS}"]


def load(config: dict, cuda_available: bool, workdir: str = ".", basedir: str = ".",
         cuda_capability: tuple[int, int] | None = None) -> Experiment:
    """Everything Snakemake checks before any job runs: the schema first (one line per problem),
    then the semantics and the files the config names. Raises ConfigError."""
    errors = schema_errors(config)
    if errors:
        raise ConfigError(errors)
    return build(config, cuda_available, model_dims(config, basedir, workdir), workdir=workdir, basedir=basedir,
                 cuda_capability=cuda_capability)
