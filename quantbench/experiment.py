"""The experiment a config describes: methods, fine-tune bases, recipes and the variants they produce.

A method is named once in the config; everything else (rules, file names, report labels) derives
from that entry through this module. A *variant* is a model the workflow produces and measures:

    <method>                                   a quantized (or baseline) model
    <method>+lora                              a LoRA adapter trained on that model, served unmerged
    <method>+lora+merge-<fp|dequant>           the adapter merged into a full-precision base
    <method>+lora+merge-<fp|dequant>+<method>  that merged model re-quantized for deployment
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from quantbench.backends import BACKENDS, calibrated, get as get_backend

MERGE_KINDS = ("fp", "dequant")
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"
# GPTQ solves for each layer from the Hessian of its calibration activations: with a handful of
# texts that estimate is too poor to mean anything. Also the schema's minimum of calibration_samples.
MIN_CALIBRATION_SAMPLES = 8
# results/<model>/models/base is the full-precision model every method starts from: a method of that
# name would be a second rule writing the same folder.
RESERVED_METHOD_NAMES = ("base",)
# Backends whose quantized layers are GPTQModel's own modules, which PEFT's 'all-linear' does not match.
GPTQMODEL_BACKENDS = ("gptq", "awq")
FINETUNE_REQUIRED = ("steps", "batch_size", "seq_len", "learning_rate", "lora")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
VARIANT_RE = re.compile(r"^(?P<base>[^+]+)(?P<lora>\+lora)?(?:\+merge-(?P<merge>fp|dequant))?(?:\+(?P<requant>[^+]+))?$")


class ConfigError(ValueError):
    """A config problem, reported before any job runs."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("invalid config:\n  - " + "\n  - ".join(errors))


@dataclass(frozen=True)
class Method:
    name: str
    backend: str
    params: dict

    def describe(self) -> str:
        return get_backend(self.backend).describe(self.params)

    @property
    def bits_per_weight(self) -> float:
        return get_backend(self.backend).bits_per_weight(self.params)

    def needs_cuda(self) -> str | None:
        return get_backend(self.backend).needs_cuda(self.params)


@dataclass(frozen=True)
class Variant:
    name: str
    base: str                    # the method the pipeline starts from
    lora: bool = False           # a LoRA adapter was trained on `base`
    merge: str | None = None     # fp | dequant: where the adapter was merged
    requant: str | None = None   # method used to re-quantize the merged model

    @property
    def pipeline(self) -> str:
        if self.requant:
            return f"fine-tune on {self.base}, merge into {self.merge}, serve {self.requant}"
        if self.merge:
            return f"fine-tune on {self.base}, merge into {self.merge}"
        if self.lora:
            return f"fine-tune on {self.base}, serve {self.base} + adapter"
        return f"serve {self.base}"

    @property
    def finetuned(self) -> bool:
        return self.lora


def parse_variant(name: str) -> Variant:
    m = VARIANT_RE.match(name)
    if not m:
        raise ValueError(f"not a variant name: {name!r}")
    return Variant(name, m["base"], bool(m["lora"]), m["merge"], m["requant"])


# Deploy formats a merged model can be re-quantized to: both start from a plain model folder.
REQUANTIZE_BACKENDS = ("gptq", "gguf")


def requantize_targets(recipe: dict) -> list[str]:
    """A recipe's `requantize`: one method or a list of them (e.g. GPTQ and a GGUF type side by side)."""
    rq = recipe.get("requantize")
    return [] if rq is None else [rq] if isinstance(rq, str) else list(rq)


@dataclass
class Experiment:
    config: dict
    methods: dict[str, Method]
    skipped: dict[str, str] = field(default_factory=dict)  # method -> reason it cannot run here
    notes: list[str] = field(default_factory=list)  # what validation could not check, or doubts

    @property
    def model_name(self) -> str:
        return self.config["model"]["name"]

    @property
    def baseline(self) -> str:
        return self.config["baseline"]

    @property
    def runnable(self) -> list[str]:
        return [m for m in self.methods if m not in self.skipped]

    @property
    def finetune_bases(self) -> list[str]:
        bases = list(self.config.get("finetune", {}).get("bases", []))
        for r in self.config.get("recipes", []):
            if r["finetune_on"] not in bases:
                bases.append(r["finetune_on"])
        return [b for b in bases if b not in self.skipped]

    def recipe_variants(self) -> list[Variant]:
        out = []
        for r in self.config.get("recipes", []):
            if r["finetune_on"] in self.skipped:
                continue
            for kind in r.get("merge_into", list(MERGE_KINDS)):
                merged = f"{r['finetune_on']}+lora+merge-{kind}"
                out.append(parse_variant(merged))
                out += [parse_variant(f"{merged}+{rq}") for rq in requantize_targets(r) if rq not in self.skipped]
        return out

    @property
    def variants(self) -> list[Variant]:
        out = [parse_variant(m) for m in self.runnable]
        out += [parse_variant(f"{b}+lora") for b in self.finetune_bases]
        seen = {v.name for v in out}
        out += [v for v in self.recipe_variants() if v.name not in seen]
        return out

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"unknown variant {name!r}")

    def reference(self, variant: Variant) -> str:
        """The variant a variant's next-token distributions are compared against: the baseline for
        models derived from the base model, the trained adapter for merged/re-quantized models
        (their question is whether merging and re-quantizing preserve what was fine-tuned)."""
        if variant.merge:
            return f"{variant.base}+lora"
        return self.baseline

    @property
    def references(self) -> list[str]:
        return sorted({self.reference(v) for v in self.variants})

    def checkpoint_of(self, method: str) -> str:
        """The method whose quantize job writes `method`'s checkpoint: the first runnable method of
        the same backend whose parameters differ only in load-time choices (a GPTQ checkpoint
        serves every kernel), else the method itself. One calibration run then serves them all."""
        m = self.methods[method]
        load_only = get_backend(m.backend).LOAD_ONLY

        def stored(x: Method) -> dict:
            return {k: v for k, v in x.params.items() if k not in load_only}
        for name in self.runnable:
            other = self.methods[name]
            if other.backend == m.backend and stored(other) == stored(m):
                return name
        return method

    def serving_method(self, variant: Variant) -> Method:
        """The method whose backend loads the variant's model folder."""
        if variant.requant:
            return self.methods[variant.requant]
        if variant.merge:
            return self.methods[self.baseline]
        return self.methods[variant.base]


def _untrainable(method: Method) -> str | None:
    """Why PEFT cannot train LoRA on this method's layers, or None."""
    return get_backend(method.backend).untrainable(method.params)


def _check_params(key: str, backend: str, entry: dict, errors: list[str]) -> dict:
    mod = get_backend(backend)
    params = {**mod.DEFAULTS, **{k: v for k, v in entry.items() if k != "backend"}}
    for k, v in params.items():
        if k not in mod.SPEC:
            errors.append(f"{key}.{k}: unknown parameter for backend {backend!r};{did_you_mean(k, mod.SPEC)} "
                          f"allowed: {', '.join(mod.SPEC)}")
            continue
        allowed = mod.SPEC[k]
        if isinstance(allowed, list):
            if v not in allowed or isinstance(v, bool) != isinstance(allowed[0], bool):
                errors.append(f"{key}.{k}: {v!r} is not supported by backend {backend!r}; "
                              f"allowed: {', '.join(map(str, allowed))}")
        elif not isinstance(v, allowed) or isinstance(v, bool):
            errors.append(f"{key}.{k}: {v!r} must be of type {allowed.__name__}")
    missing = [k for k in mod.SPEC if k not in params and k != "dtype"]
    if backend != "none" and "bits" in missing:
        errors.append(f"{key}.bits: missing; allowed: {', '.join(map(str, mod.SPEC['bits']))}")
    return params


# --- the config's shape: JSON schema, one line per problem, keys written as dotted paths ---------

_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "null"}


def _show(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(name, allowed) -> str:
    """' did you mean 'rank'?' for a near miss among allowed names, else ''."""
    allowed = [str(a) for a in allowed]
    # difflib misses abbreviations (`rank` for `r`): a name that starts with an allowed one is close too.
    close = (difflib.get_close_matches(str(name), allowed, n=1)
             or [a for a in allowed if str(name).startswith(a) or a.startswith(str(name))][:1])
    return f" did you mean {close[0]!r}?" if close else ""


def dotted(path) -> str:
    """A config location as the user writes it: `benchmark.prefill.batch_sizes[0]`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(config)"


def _schema_message(err) -> list[str]:
    key, inst, val, schema = dotted(err.absolute_path), err.instance, err.validator_value, err.schema
    join = lambda *parts: ".".join(p for p in parts if p != "(config)")  # noqa: E731
    hint = f" ({schema['description']})" if "description" in schema else ""
    kind, where = err.validator, (key if key != "(config)" else "the top level")
    if kind == "required":
        return [f"{join(key, k)}: missing; required in {where}" for k in val if isinstance(inst, dict) and k not in inst]
    if kind == "additionalProperties" and isinstance(inst, dict):
        allowed = list(schema.get("properties", {}))
        return [f"{join(key, k)}: unknown key;{did_you_mean(k, allowed)} allowed in {where}: {', '.join(allowed)}"
                for k in inst if k not in allowed]
    if kind == "type":
        types = [val] if isinstance(val, str) else val
        return [f"{key}: {_show(inst)} must be {' or '.join(_TYPE_NAMES.get(t, t) for t in types)}"]
    if kind == "enum":
        return [f"{key}: {_show(inst)} is not allowed; allowed: {', '.join(map(str, val))}"]
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
        return [f"{key}: {_show(inst)} is out of range; allowed: {op} {val}{hint}"]
    if kind == "minItems":
        return [f"{key}: needs at least {val} item(s), got {len(inst)}"]
    if kind == "minProperties":
        return [f"{key}: needs at least {val} entry(ies)"]
    if kind == "pattern":
        return [f"{key}: {_show(inst)} is not allowed; allowed: letters, digits, '_', '.' and '-', "
                f"starting with a letter or digit (pattern {val})"]
    return [f"{key}: {err.message}"]


def schema_errors(config, schema_path: str | Path = SCHEMA_PATH) -> list[str]:
    """The config checked against workflow/schemas/config.schema.yaml (the JSON schema Snakemake's
    own validate() also applies, with its defaults), one clear line per problem."""
    import jsonschema
    import yaml

    with open(schema_path) as f:
        schema = yaml.safe_load(f)
    validator = jsonschema.Draft202012Validator(schema)
    errors: list[str] = []
    for err in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        for msg in _schema_message(err):
            if msg not in errors:
                errors.append(msg)
    return errors


# --- what the schema cannot say: methods, backends, references between keys -----------------------

def build(config: dict, cuda_available: bool, model_dims: list[int] | None = None,
          workdir: str | None = None, basedir: str | None = None) -> Experiment:
    """Validate a config's semantics and derive the experiment. Raises ConfigError listing every
    problem, each naming the key, the value and what is allowed. With `workdir` (where jobs run:
    relative data and model paths) and `basedir` (the project: architecture files), the files the
    config names are checked too."""
    errors: list[str] = []
    notes: list[str] = []
    methods: dict[str, Method] = {}
    entries = config.get("methods") or {}
    if not entries:
        errors.append("methods: at least one method is required")
    for name, entry in entries.items():
        key = f"methods.{name}"
        if not isinstance(name, str):  # YAML reads `8:` as a number
            errors.append(f"{key}: {name!r} is a number, not a name; allowed: a name of lower-case letters, digits, "
                          f"'-', '_' and '.' (quote it, '{name}', or start it with a letter)")
            continue
        if name in RESERVED_METHOD_NAMES:
            errors.append(f"{key}: {name!r} is reserved (results/<model>/models/{name} is the unquantized model every "
                          f"method starts from); allowed: any other name, e.g. {name}-fp32")
            continue
        if not NAME_RE.match(name) or "+" in name:
            errors.append(f"{key}: method names use lower-case letters, digits, '-', '_' and '.'")
            continue
        if not isinstance(entry, dict):
            errors.append(f"{key}: must be a mapping with a 'backend' key")
            continue
        backend = entry.get("backend")
        if backend not in BACKENDS:
            errors.append(f"{key}.backend: {backend!r} is not a backend; allowed: {', '.join(BACKENDS)}")
            continue
        params = _check_params(key, backend, entry, errors)
        # What one parameter alone cannot say (a kernel's bits, a group size against the model's
        # layer widths): each backend's own rules, once its parameters are individually valid.
        if not any(e.startswith(key) for e in errors):
            errors += [f"{key}.{p}" for p in get_backend(backend).problems(params, model_dims)]
        methods[name] = Method(name, backend, params)

    baseline = config.get("baseline")
    if baseline not in methods:
        errors.append(f"baseline: {baseline!r} is not a method; allowed: {', '.join(methods) or '(none)'}")
    elif methods[baseline].backend != "none":
        errors.append(f"baseline: {baseline!r} must be an unquantized method (backend: none)")

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
        if missing:
            why, instead = missing, ""
        elif device == "cuda":
            why, instead = mod.needs_cpu(method.params), mod.CUDA_ALTERNATIVE
        else:
            why, instead = method.needs_cuda(), mod.CPU_ALTERNATIVE
        if why:
            if policy == "error" and missing:
                errors.append(f"methods.{name}: {missing} (or set unsupported_methods: skip to record it as skipped)")
            elif policy == "error":
                errors.append(f"methods.{name}: {why}, and device is {device!r}; allowed with device {device}: "
                              f"{instead or 'another method'} (or set unsupported_methods: skip to record it as skipped)")
            else:
                skipped[name] = why

    ft = config.get("finetune") or {}
    for i, b in enumerate(ft.get("bases", [])):
        if b not in methods:
            errors.append(f"finetune.bases[{i}]: {b!r} is not a method; allowed: {', '.join(methods)}")
        elif _untrainable(methods[b]):
            errors.append(f"finetune.bases[{i}]: {b!r} cannot be fine-tuned: {_untrainable(methods[b])}; allowed: "
                          f"{', '.join(n for n, m in methods.items() if not _untrainable(m))}")
    recipes = config.get("recipes") or []
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
                              f"({', '.join(able)}); {r['finetune_on']!r} uses backend {methods[r['finetune_on']].backend!r}")
        for rq in requantize_targets(r):
            if rq not in methods or methods[rq].backend not in REQUANTIZE_BACKENDS:
                allowed = [m for m, x in methods.items() if x.backend in REQUANTIZE_BACKENDS]
                errors.append(f"{key}.requantize: {rq!r} must be a GPTQ or GGUF method; "
                              f"allowed: {', '.join(allowed) or '(none)'}")
    if ft.get("bases") or recipes:
        for k in FINETUNE_REQUIRED:
            if k not in ft:
                errors.append(f"finetune.{k}: missing; required when finetune.bases or recipes are set")
        lora = ft.get("lora") or {}
        if "lora" in ft and "target_modules" not in lora:
            errors.append("finetune.lora.target_modules: missing; name the linear layers, e.g. [q_proj, k_proj, "
                          "v_proj, o_proj, gate_proj, up_proj, down_proj] (PEFT's 'all-linear' misses GPTQ layers)")

    errors += _generate_mode_errors(config, notes)
    errors += _model_errors(config)
    errors += _source_key_errors(config)
    errors += _gguf_source_errors(config, methods)
    if not errors:
        facts = model_facts(config, basedir or ".", workdir)
        errors += _context_errors(config, facts)
        errors += _lora_target_errors(config, methods, facts, notes)
        errors += _suite_dataset_errors(config)
        errors += _calibration_size_errors(config)
    if workdir is not None:
        calibrates = any(calibrated(m.backend) for n, m in methods.items() if n not in skipped)
        needs = {"calibration": calibrates, "finetune": bool(ft.get("bases") or recipes),
                 "heldout": bool(config.get("evaluate"))}
        errors += _file_errors(config, needs, workdir, basedir or workdir, notes)
        errors += _packaged_source_errors(config, workdir)
    if errors:
        raise ConfigError(errors)
    return Experiment(config, methods, skipped, notes)


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


HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")


def _resolve(path: str, *roots: str) -> Path | None:
    """The first existing location of a config path (absolute, or relative to one of roots)."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [Path(r) / p for r in roots]
    return next((c for c in candidates if c.exists()), None)


def _looks_local(path: str) -> bool:
    return path.startswith((".", "/", "~")) or not HUB_ID_RE.match(path)


def _hub_cached(repo_id: str, filename: str = "config.json") -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, filename)
        return hit if isinstance(hit, str) else None
    except Exception:  # noqa: BLE001 - an unusual id or cache layout: just unknown
        return None


def _count_rows(path: Path, kind: str, limit: int = 100_000) -> tuple[int, str | None]:
    """Usable rows of a JSON-lines file (texts, or instruction/response pairs), or the first problem."""
    n = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                return n, f"line {lineno} is not JSON"
            if not isinstance(row, dict):
                return n, f"line {lineno} is not a JSON object"
            if kind == "finetune":
                ok = "conversations" in row or ("instruction" in row and "response" in row)
            else:
                ok = bool(str(row.get("text") or "").strip())
            n += ok
            if n >= limit:
                break
    return n, None


def _file_errors(config: dict, needs: dict[str, bool], workdir: str, basedir: str, notes: list[str]) -> list[str]:
    errors: list[str] = []
    model = config.get("model") or {}
    offline = config.get("offline", True)
    if model.get("source") == "pretrained" and model.get("path"):
        path = model["path"]
        local = _resolve(path, workdir)
        if local is None and _looks_local(path):
            errors.append(f"model.path: {path!r} does not exist (relative paths start from the working directory "
                          f"{workdir}); allowed: a local model folder or a hub id (org/name)")
        elif local is not None:
            errors += _model_folder_errors(local, path)
        elif not _hub_cached(path) and offline:
            errors.append(f"model.path: {path!r} is a hub id that is not in the Hugging Face cache here "
                          f"({_hf_cache_dirs()[0]}), and offline is true: no job could fetch it; allowed: a local "
                          "model folder, a cached hub id (download it first), or offline: false")
        elif not _hub_cached(path):
            notes.append(f"model.path: {path!r} is a hub id and cannot be checked before the run")
    if model.get("source") == "random" and model.get("architecture"):
        if _resolve(model["architecture"], basedir, workdir) is None:
            errors.append(f"model.architecture: {model['architecture']!r} does not exist (relative to the project "
                          f"{basedir}); allowed: a config.json, e.g. config/architectures/llama-2-7b.json")

    data = config.get("data") or {}
    if data.get("source", "toy") != "files":
        return errors
    why = {"calibration": "a method that calibrates (GPTQ, AWQ) is configured",
           "finetune": "finetune.bases or recipes are set", "heldout": "evaluate: is set"}
    for kind, needed in needs.items():
        key, spec = f"data.{kind}", data.get(kind)
        if not needed:
            continue
        if spec is None:
            errors.append(f"{key}: missing; data.source is 'files' and {why[kind]}; allowed: a JSON lines path, "
                          "or load_dataset arguments {path, name, split, text_field}")
            continue
        if isinstance(spec, dict):
            if not spec.get("path"):
                errors.append(f"{key}.path: missing; load_dataset arguments need a path (a hub dataset id, or "
                              "json/csv/text with data_files)")
                continue
            files = spec.get("data_files")
            if spec["path"] in ("json", "csv", "text", "parquet") and files:
                for f in [files] if isinstance(files, str) else (files.values() if isinstance(files, dict) else files):
                    for one in [f] if isinstance(f, str) else f:
                        if _resolve(one, workdir) is None:
                            errors.append(f"{key}.data_files: {one!r} does not exist (relative to {workdir})")
            elif offline:
                notes.append(f"{key}: dataset {spec['path']!r} is a hub id and cannot be checked before the run "
                             "(offline: true: it must be in the datasets cache)")
            continue
        if not isinstance(spec, str):
            errors.append(f"{key}: {_show(spec)} must be a JSON lines path or a mapping of load_dataset arguments")
            continue
        path = _resolve(spec, workdir)
        if path is None or not path.is_file():
            rows = '{"instruction": ..., "response": ...}' if kind == "finetune" else '{"text": ...}'
            errors.append(f"{key}: {spec!r} does not exist (relative paths start from the working directory "
                          f"{workdir}); allowed: a JSON lines file of {rows} rows")
            continue
        n, problem = _count_rows(path, kind)
        field_ = "instruction/response pairs" if kind == "finetune" else "non-empty 'text' fields"
        if problem:
            errors.append(f"{key}: {spec!r}: {problem}; allowed: JSON lines, one object per line")
        elif n == 0:
            errors.append(f"{key}: {spec!r} has no rows with {field_}"
                          + (" (the file is empty)" if path.stat().st_size == 0 else ""))
        elif kind == "calibration":
            wanted = data.get("calibration_samples", 128)
            if n < MIN_CALIBRATION_SAMPLES:
                errors.append(f"{key}: {spec!r} has {n} text(s); calibration (GPTQ, AWQ) needs at least "
                              f"{MIN_CALIBRATION_SAMPLES}")
            elif n < wanted:
                notes.append(f"{key}: {spec!r} has {n} texts, fewer than data.calibration_samples ({wanted}); "
                             f"GPTQ and AWQ calibrate on {n}")
    return errors


def _model_folder_errors(folder: Path, shown: str) -> list[str]:
    if not folder.is_dir():
        return [f"model.path: {shown!r} is a file; allowed: a model folder (config.json, weights, tokenizer) or a hub id"]
    names = {p.name for p in folder.iterdir()}
    errors = []
    if "config.json" not in names:
        errors.append(f"model.path: {shown!r} has no config.json; a model folder holds config.json, the weights "
                      "(*.safetensors or *.bin) and the tokenizer files (save_pretrained writes all three)")
    if not any(n.endswith((".safetensors", ".bin")) for n in names):
        errors.append(f"model.path: {shown!r} has no weights (*.safetensors or *.bin)")
    if not names & set(TOKENIZER_FILES):
        errors.append(f"model.path: {shown!r} has no tokenizer files (one of {', '.join(TOKENIZER_FILES)}); "
                      "save the tokenizer there with tokenizer.save_pretrained(path)")
    return errors


def load(config: dict, cuda_available: bool, workdir: str = ".", basedir: str = ".") -> Experiment:
    """Everything Snakemake checks before any job runs: the schema first (one line per problem),
    then the semantics and the files the config names. Raises ConfigError."""
    errors = schema_errors(config)
    if errors:
        raise ConfigError(errors)
    return build(config, cuda_available, model_dims(config, basedir, workdir), workdir=workdir, basedir=basedir)


def config_hash(config: dict) -> str:
    """A short hash of the whole (defaults-filled) config: records carry it as provenance."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def model_dims(config: dict, basedir: str = ".", workdir: str | None = None) -> list[int] | None:
    """Input widths of the model's linear layers (what a GPTQ group size must divide), read
    without loading weights; None when unknown (a hub id that is not in the local cache)."""
    model = config.get("model") or {}
    if model.get("source") == "toy":
        toy = model.get("toy") or {}
        dims = [toy.get("hidden_size"), toy.get("intermediate_size")]
        return [d for d in dims if isinstance(d, int)] or None
    if model.get("source") == "gguf":
        info = _gguf_info(model.get("path"), workdir)
        return info.layer_widths if info else None
    arch, _ = _model_config_json(config, basedir, workdir)
    if arch is None:
        return None
    return [d for d in (arch.get("hidden_size"), arch.get("intermediate_size")) if isinstance(d, int)] or None


# --- sources that come from files or installed packages: a GGUF base, WordNet data ---------------

WORDNET_DEFAULT = "pkg:wn/data/wordnet-3.3"
_GGUF_CACHE: dict = {}


def _gguf_lookup(path, workdir: str | None):
    """The GGUF file's header, or the GGUFError / FileNotFoundError it raised; cached, since the
    check and model_dims both need it. None when no path is given."""
    from quantbench import gguf_source, package_paths

    if not isinstance(path, str) or not path:
        return None
    if path not in _GGUF_CACHE:
        try:
            real = package_paths.resolve(path)
            if not Path(real).is_absolute() and workdir:
                real = str(Path(workdir) / real)
            _GGUF_CACHE[path] = gguf_source.check(real)
        except (gguf_source.GGUFError, FileNotFoundError) as err:
            _GGUF_CACHE[path] = err
    return _GGUF_CACHE[path]


def _gguf_info(path, workdir: str | None):
    found = _gguf_lookup(path, workdir)
    return None if isinstance(found, Exception) else found


def _packaged_source_errors(config: dict, workdir: str) -> list[str]:
    from quantbench import package_paths

    errors: list[str] = []
    model = config.get("model") or {}
    if model.get("source") == "gguf" and model.get("path"):
        found = _gguf_lookup(model["path"], workdir)
        if isinstance(found, Exception):
            errors.append(f"model.path: {found}; allowed: a GGUF file of one of the architectures transformers "
                          "loads (source gguf)")
    data = config.get("data") or {}
    if data.get("source") == "wordnet":
        where = (data.get("wordnet") or {}).get("path", WORDNET_DEFAULT)
        try:
            folder = Path(package_paths.resolve(where))
        except FileNotFoundError as err:
            return errors + [f"data.wordnet.path: {err}"]
        missing = [n for n in ("data.noun", "data.verb", "data.adj", "data.adv") if not (folder / n).is_file()]
        if missing:
            errors.append(f"data.wordnet.path: {where!r} ({folder}) lacks WordNet's {', '.join(missing)}; allowed: "
                          "a WordNet database folder (default pkg:wn/data/wordnet-3.3)")
        for kind in ("calibration", "finetune", "heldout"):
            if data.get(kind) is not None:
                errors.append(f"data.{kind}: given while data.source is 'wordnet', which writes its own; "
                              "remove it, or set data.source: files")
    return errors


# --- what the model and the data can hold: context length, LoRA layer names, datasets offline ------

# Linear layers PEFT can wrap, by model_type, as `parent.name` inside one decoder layer (lm_head
# sits at the top). Architectures not listed are noted, not checked.
_LLAMA_LAYERS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
LORA_LAYERS = {"llama": _LLAMA_LAYERS, "mistral": _LLAMA_LAYERS, "qwen2": _LLAMA_LAYERS, "qwen3": _LLAMA_LAYERS}


@dataclass(frozen=True)
class ModelFacts:
    """What validation reads about the model without loading it; None where unknown."""
    model_type: str | None
    context: int | None  # max_position_embeddings: positions the model was built for
    where: str           # where these were read, for messages


def _model_config_json(config: dict, basedir: str, workdir: str | None) -> tuple[dict | None, str]:
    """The config.json of a random architecture or a pretrained model (local, or in the hub cache)."""
    model = config.get("model") or {}
    path = model.get("architecture") if model.get("source") == "random" else model.get("path")
    if model.get("source") not in ("random", "pretrained") or not isinstance(path, str) or not path:
        return None, ""
    found = _resolve(path, basedir, *([workdir] if workdir else []))
    if found is None and model.get("source") == "pretrained" and HUB_ID_RE.match(path):
        cached = _hub_cached(path)
        found = Path(cached) if cached else None
    if found is not None and found.is_dir():
        found = found / "config.json"
    if found is None or not found.is_file():
        return None, path
    try:
        with open(found) as f:
            return json.load(f), path
    except (OSError, json.JSONDecodeError):
        return None, path


def model_facts(config: dict, basedir: str = ".", workdir: str | None = None) -> ModelFacts:
    model = config.get("model") or {}
    source = model.get("source")
    if source == "toy":  # quantbench/toy/model.py builds a LlamaForCausalLM from model.toy
        return ModelFacts("llama", (model.get("toy") or {}).get("max_position_embeddings"), "model.toy")
    if source == "gguf":
        info = _gguf_info(model.get("path"), workdir)
        return ModelFacts(info.architecture, info.context_length, model["path"]) if info else ModelFacts(None, None, "")
    arch, where = _model_config_json(config, basedir, workdir)
    if arch is None:
        return ModelFacts(None, None, where)
    ctx = next((arch[k] for k in ("max_position_embeddings", "n_positions", "max_sequence_length")
                if isinstance(arch.get(k), int)), None)
    return ModelFacts(arch.get("model_type"), ctx, where)


def _source_key_errors(config: dict) -> list[str]:
    """Keys the chosen source ignores (the user believes they are used), and sources that do not fit."""
    model, data = config.get("model") or {}, config.get("data") or {}
    errors = []
    if model.get("source") == "toy":
        for key, other in (("path", "pretrained or gguf"), ("architecture", "random")):
            if key in model:
                errors.append(f"model.{key}: given while model.source is 'toy', which builds its own model; "
                              f"remove it, or set model.source: {other}")
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


def _gguf_source_errors(config: dict, methods: dict[str, Method]) -> list[str]:
    """llama.cpp's converter writes a tokenizer it recognises (by a hash of its pre-tokenizer); the
    toy and random models train their own byte-level BPE, which it stops on."""
    source = (config.get("model") or {}).get("source", "toy")
    if source not in ("toy", "random"):
        return []
    return [f"methods.{name}: backend 'gguf' converts the model with llama.cpp's converter, which does not know the "
            f"{source} model's locally trained tokenizer; allowed with model.source: pretrained or gguf (a real "
            "model's tokenizer), e.g. config/smollm2.yaml" for name, m in methods.items() if m.backend == "gguf"]


def _sequence_lengths(config: dict) -> list[tuple[str, int, str]]:
    """(key, tokens in one sequence, how they add up) for every sequence a job feeds the model."""
    data, ft, ev = config.get("data") or {}, config.get("finetune") or {}, config.get("evaluate") or {}
    bench, toy = config.get("benchmark") or {}, (config.get("model") or {}).get("toy") or {}
    out = [("data.calibration_seq_len", data.get("calibration_seq_len"), ""),
           ("finetune.seq_len", ft.get("seq_len"), ""),
           ("evaluate.distribution_window", ev.get("distribution_window"), ""),
           ("evaluate.max_length", ev.get("max_length"), ""),
           ("model.toy.train_seq_len", toy.get("train_seq_len"), ""),
           ("benchmark.prefill.prompt_len", (bench.get("prefill") or {}).get("prompt_len"), "")]
    gen = bench.get("generate") or {}
    prompt = gen.get("prompt_len")
    if isinstance(prompt, int):
        lists = [("new_tokens", gen.get("new_tokens")), ("fast_new_tokens", gen.get("fast_new_tokens"))]
        lists += [(f"batch_sizes_at[{i}].new_tokens", [b.get("new_tokens")])
                  for i, b in enumerate(gen.get("batch_sizes_at") or [])]
        for name, values in lists:
            for i, n in enumerate(values or []):
                if isinstance(n, int):
                    key = f"benchmark.generate.{name}" + ("" if name.startswith("batch_sizes_at") else f"[{i}]")
                    out.append((key, prompt + n, f" (prompt_len {prompt} + {n} new tokens)"))
    return [(k, v, how) for k, v, how in out if isinstance(v, int) and not isinstance(v, bool)]


def _context_errors(config: dict, facts: ModelFacts) -> list[str]:
    ctx = facts.context
    if not isinstance(ctx, int):
        return []
    return [f"{key}: {value}{how} is longer than the model's context ({ctx} tokens, max_position_embeddings "
            f"from {facts.where}); allowed: at most {ctx}"
            for key, value, how in _sequence_lengths(config) if value > ctx]


def _lora_target_errors(config: dict, methods: dict[str, Method], facts: ModelFacts, notes: list[str]) -> list[str]:
    """target_modules as PEFT matches them: a list entry names a module or a dotted suffix of its name;
    a string is a regular expression over whole module names, or 'all-linear'."""
    ft = config.get("finetune") or {}
    targets = (ft.get("lora") or {}).get("target_modules")
    bases = set(ft.get("bases") or []) | {r.get("finetune_on") for r in config.get("recipes") or []}
    if targets is None or not bases:
        return []
    key = "finetune.lora.target_modules"
    gptqmodel = sorted(b for b in bases if b in methods and methods[b].backend in GPTQMODEL_BACKENDS)
    layers = LORA_LAYERS.get(facts.model_type)
    example = f"[{', '.join(n.split('.')[-1] for n in layers or _LLAMA_LAYERS)}]"
    if isinstance(targets, str) and targets.lower() == "all-linear":
        if gptqmodel:
            return [f"{key}: 'all-linear' finds no layer to train on the GPTQ/AWQ base(s) {', '.join(gptqmodel)}: PEFT "
                    "takes torch.nn.Linear layers only, GPTQModel's quantized layers are not, and it leaves out lm_head; "
                    f"allowed: the layer names, e.g. {example}"]
        return []
    if layers is None:
        why = (f"model_type {facts.model_type!r} is not one of {', '.join(LORA_LAYERS)}" if facts.model_type
               else "the model's config is not readable here")
        notes.append(f"{key}: cannot be checked before the run ({why}); PEFT stops the fine-tune job "
                     "if no module matches")
        return []
    # One decoder layer's full names stand for all of them.
    names = [f"model.layers.0.{n}" for n in layers] + ["lm_head"]
    short = [n.split(".")[-1] for n in layers] + ["lm_head"]
    if isinstance(targets, str):
        try:
            hit = any(re.fullmatch(targets, n) for n in names)
        except re.error as err:
            return [f"{key}: {targets!r} is not a regular expression ({err}); allowed: a list of layer names, "
                    f"e.g. {example}"]
        return [] if hit else [f"{key}: {targets!r} matches no module name of the model (a string is a regular "
                               f"expression over whole names such as {names[0]!r}); allowed: a list, e.g. {example}"]
    errors = []
    for i, t in enumerate(targets):
        if not any(n == t or n.endswith(f".{t}") for n in names):
            errors.append(f"{key}[{i}]: {t!r} is not a layer of this {facts.model_type} model;"
                          f"{did_you_mean(t, short)} allowed: {', '.join(short)}")
    return errors


def _hf_cache_dirs() -> list[Path]:
    """Where an offline run finds Hugging Face datasets: the hub's file cache and datasets' own."""
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or home / "hub"
    return [Path(hub), Path(os.environ.get("HF_DATASETS_CACHE") or home / "datasets")]


def dataset_cached(repo_id: str) -> bool:
    hub, processed = _hf_cache_dirs()
    return ((hub / f"datasets--{repo_id.replace('/', '--')}").is_dir()
            or (processed / repo_id.replace("/", "___")).is_dir())


def _suite_dataset_errors(config: dict) -> list[str]:
    from quantbench import suites

    ev = config.get("evaluate") or {}
    name = ev.get("suite", "toy")
    if not ev or not config.get("offline", True) or name not in suites.SUITES:
        return []
    missing = [f"{e['dataset']} ({e['task']})" for e in suites.suite(name)
               if e.get("dataset") and not dataset_cached(e["dataset"])]
    if not missing:
        return []
    local = [s for s, es in suites.SUITES.items() if all(e.get("local") for e in es)]
    return [f"evaluate.suite: {name!r} reads Hugging Face datasets that are not in this machine's cache "
            f"({', '.join(str(d) for d in _hf_cache_dirs())}) while offline is true: {', '.join(missing)}; "
            f"allowed offline: {', '.join(local)} (local data), or download them first, or set offline: false"]


def _calibration_size_errors(config: dict) -> list[str]:
    """calibration_samples beyond the texts the toy data holds (a file's rows are counted with the files)."""
    from quantbench.toy.data import CALIBRATION_TEXTS

    data = config.get("data") or {}
    wanted = data.get("calibration_samples")
    if data.get("source", "toy") != "toy" or not isinstance(wanted, int) or wanted <= CALIBRATION_TEXTS:
        return []
    return [f"data.calibration_samples: {wanted} is more than the {CALIBRATION_TEXTS} calibration texts the toy "
            f"data holds; allowed: at most {CALIBRATION_TEXTS}"]
