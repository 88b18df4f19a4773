"""The experiment a config describes: methods, fine-tune bases, recipes and the variants they produce.

A method is named once in the config; everything else (rules, file names, report labels) derives
from that entry through this module. A *variant* is a model the workflow produces and measures:

    <method>                                   a quantized (or baseline) model
    <method>+lora                              a LoRA adapter trained on that model, served unmerged
    <method>+lora+merge-<fp|dequant>           the adapter merged into a full-precision base
    <method>+lora+merge-<fp|dequant>+<method>  that merged model re-quantized for deployment
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from quantbench.backends import BACKENDS, get as get_backend

MERGE_KINDS = ("fp", "dequant")
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


@dataclass
class Experiment:
    config: dict
    methods: dict[str, Method]
    skipped: dict[str, str] = field(default_factory=dict)  # method -> reason it cannot run here

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
                if r.get("requantize") and r["requantize"] not in self.skipped:
                    out.append(parse_variant(f"{merged}+{r['requantize']}"))
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

    def serving_method(self, variant: Variant) -> Method:
        """The method whose backend loads the variant's model folder."""
        if variant.requant:
            return self.methods[variant.requant]
        if variant.merge:
            return self.methods[self.baseline]
        return self.methods[variant.base]


def _check_params(key: str, backend: str, entry: dict, errors: list[str]) -> dict:
    mod = get_backend(backend)
    params = {**mod.DEFAULTS, **{k: v for k, v in entry.items() if k != "backend"}}
    for k, v in params.items():
        if k not in mod.SPEC:
            errors.append(f"{key}.{k}: unknown parameter for backend {backend!r}; "
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


def build(config: dict, cuda_available: bool, model_dims: list[int] | None = None) -> Experiment:
    """Validate a config's semantics and derive the experiment. Raises ConfigError listing every
    problem, each naming the key, the value and what is allowed."""
    errors: list[str] = []
    methods: dict[str, Method] = {}
    entries = config.get("methods") or {}
    if not entries:
        errors.append("methods: at least one method is required")
    for name, entry in entries.items():
        key = f"methods.{name}"
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
        if backend == "gptq" and not any(e.startswith(key) for e in errors):
            why = get_backend("gptq").kernel_supports(params)
            if why:
                errors.append(f"{key}.bits: {params['bits']} with {why}")
            g = params["group_size"]
            if g != -1 and g <= 0:
                errors.append(f"{key}.group_size: {g} must be a positive divisor of the layer widths or -1")
            elif g > 0 and model_dims:
                bad = sorted({d for d in model_dims if d % g})
                if bad:
                    errors.append(f"{key}.group_size: {g} does not divide the layer width(s) {bad}; "
                                  f"choose a divisor of {', '.join(map(str, sorted(set(model_dims))))} or -1")
        methods[name] = Method(name, backend, params)

    baseline = config.get("baseline")
    if baseline not in methods:
        errors.append(f"baseline: {baseline!r} is not a method; allowed: {', '.join(methods) or '(none)'}")
    elif methods[baseline].backend != "none":
        errors.append(f"baseline: {baseline!r} must be an unquantized method (backend: none)")

    device = config.get("device", "cpu")
    skipped: dict[str, str] = {}
    policy = config.get("unsupported_methods", "skip")
    for name, method in methods.items():
        if errors:
            break
        why = method.needs_cuda() if device != "cuda" or not cuda_available else None
        if why is None and device == "cuda" and not cuda_available:
            why = "device is 'cuda' but no CUDA device is visible"
        if why:
            if policy == "error":
                errors.append(f"methods.{name}: {why}; this machine has no CUDA "
                              f"(set unsupported_methods: skip to record it as skipped)")
            else:
                skipped[name] = why

    ft = config.get("finetune") or {}
    for i, b in enumerate(ft.get("bases", [])):
        if b not in methods:
            errors.append(f"finetune.bases[{i}]: {b!r} is not a method; allowed: {', '.join(methods)}")
    for i, r in enumerate(config.get("recipes") or []):
        key = f"recipes[{i}]"
        if r.get("finetune_on") not in methods:
            errors.append(f"{key}.finetune_on: {r.get('finetune_on')!r} is not a method; "
                          f"allowed: {', '.join(methods)}")
            continue
        for kind in r.get("merge_into", []):
            if kind not in MERGE_KINDS:
                errors.append(f"{key}.merge_into: {kind!r}; allowed: {', '.join(MERGE_KINDS)}")
            elif kind == "dequant" and methods[r["finetune_on"]].backend != "bnb":
                errors.append(f"{key}.merge_into: 'dequant' needs a bitsandbytes base; "
                              f"{r['finetune_on']!r} uses backend {methods[r['finetune_on']].backend!r}")
        rq = r.get("requantize")
        if rq is not None and (rq not in methods or methods[rq].backend != "gptq"):
            allowed = [m for m, x in methods.items() if x.backend == "gptq"]
            errors.append(f"{key}.requantize: {rq!r} must be a GPTQ method; allowed: {', '.join(allowed) or '(none)'}")
    if errors:
        raise ConfigError(errors)
    return Experiment(config, methods, skipped)


def model_dims(config: dict, basedir: str = ".") -> list[int] | None:
    """Input widths of the model's linear layers (what a GPTQ group size must divide), read
    without loading weights; None when only a hub id is known."""
    import json
    import os

    model = config.get("model", {})
    if model.get("source") == "toy":
        toy = model.get("toy", {})
        dims = [toy.get("hidden_size"), toy.get("intermediate_size")]
        return [d for d in dims if isinstance(d, int)] or None
    path = model.get("architecture") if model.get("source") == "random" else model.get("path")
    if not path:
        return None
    path = path if os.path.isabs(path) else os.path.join(basedir, path)
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        arch = json.load(f)
    return [d for d in (arch.get("hidden_size"), arch.get("intermediate_size")) if isinstance(d, int)] or None
