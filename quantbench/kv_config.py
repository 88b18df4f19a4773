"""The `kv_cache:` axis of a config: named KV caches, the weight methods each is crossed with, the
context lengths; its checks (one line per problem, naming the key, the value and what is allowed)
and the variants it adds.

A variant served with a quantized cache is named `<variant>@<cache>` (e.g. `bnb-nf4@kv-hqq4`); the
same variant with the runtime's plain cache (transformers' DynamicCache, llama.cpp's default f16)
keeps its own name. Both rows are measured on the same windows against the baseline with the plain
cache (docs/kv-cache.md).
"""
from __future__ import annotations

from dataclasses import dataclass

from quantbench.backends import get as get_backend

# Transformers' QuantizedCache backends that run here, with what each takes; quanto needs
# optimum-quanto, which requirements.txt does not carry.
HQQ_BITS = (1, 2, 3, 4, 8)  # HQQQuantizedLayer's own list
HQQ_AXES = (0, 1)
# llama.cpp's cache types (llama-cli --cache-type-k/-v); a quantized V cache needs flash attention
LLAMACPP_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
BACKENDS = {
    "hqq": {"bits": HQQ_BITS, "group_size": int, "residual_length": int, "axis_key": HQQ_AXES, "axis_value": HQQ_AXES},
    "fp8": {},
    "llamacpp": {"type_k": LLAMACPP_TYPES, "type_v": LLAMACPP_TYPES},
}
REQUIRED = {"hqq": ("bits",), "fp8": (), "llamacpp": ("type_k", "type_v")}
# What a cache does not say: per-token groups along the head dimension (axis 1; axis 0 groups
# strided across batch, heads and positions) and transformers' own residual window.
HQQ_DEFAULTS = {"group_size": 64, "residual_length": 128, "axis_key": 1, "axis_value": 1}
DEFAULTS = {"chunk": 256, "text": "pydoc-topics", "decode_steps": 128, "decode_batch_sizes": [1],
            "fit_memory_gb": [8, 24, 80], "top_k": 256}
TEXTS = ("pydoc-topics",)


@dataclass(frozen=True)
class KVCache:
    name: str
    backend: str
    params: dict

    @property
    def runtime(self) -> str:
        """What runs a model with this cache, as Backend.RUNTIME names it."""
        return "llama.cpp" if self.backend == "llamacpp" else "torch"

    def describe(self) -> str:
        if self.backend == "llamacpp":
            return f"llama.cpp K {self.params['type_k']}, V {self.params['type_v']}"
        if self.backend == "fp8":
            return "float8 e4m3, per-tensor scale"
        p = self.params
        return f"HQQ {p['bits']}-bit, groups of {p['group_size']}, last {p['residual_length']} tokens unquantized"


def settings(config: dict) -> dict:
    """The kv_cache section with its defaults filled in ({} when the config has none)."""
    kv = config.get("kv_cache") or {}
    if not kv:
        return {}
    out = {**DEFAULTS, **kv}
    out.setdefault("decode_context", max(kv.get("contexts") or [0]))
    out.setdefault("windows", [1] * len(kv.get("contexts") or []))
    return out


def caches(config: dict) -> dict[str, KVCache]:
    out = {}
    for name, entry in ((config.get("kv_cache") or {}).get("caches") or {}).items():
        params = {k: v for k, v in entry.items() if k != "backend"}
        if entry.get("backend") == "hqq":
            params = {**HQQ_DEFAULTS, **params}
        out[name] = KVCache(name, entry.get("backend"), params)
    return out


def _cache_errors(name: str, entry: dict) -> list[str]:
    key = f"kv_cache.caches.{name}"
    backend = entry.get("backend")
    if backend == "quanto":
        return [f"{key}.backend: 'quanto' needs optimum-quanto, which requirements.txt does not install; "
                f"allowed: {', '.join(BACKENDS)}"]
    if backend not in BACKENDS:
        return [f"{key}.backend: {backend!r} is not a KV-cache backend; allowed: {', '.join(BACKENDS)}"]
    spec, errors = BACKENDS[backend], []
    for k, v in entry.items():
        if k == "backend":
            continue
        if k not in spec:
            allowed = ", ".join(spec) or "no other keys"
            errors.append(f"{key}.{k}: not a parameter of backend {backend!r}; allowed: {allowed}")
        elif isinstance(spec[k], tuple) and v not in spec[k]:
            errors.append(f"{key}.{k}: {v!r} is not supported by backend {backend!r}; "
                          f"allowed: {', '.join(map(str, spec[k]))}")
        elif spec[k] is int and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            errors.append(f"{key}.{k}: {v!r} must be a positive integer")
    errors += [f"{key}.{k}: missing; allowed: {', '.join(map(str, spec[k]))}" for k in REQUIRED[backend]
               if k not in entry]
    return errors


def errors(config: dict, methods: dict, context: int | None, where: str = "") -> list[str]:
    """Every problem of the kv_cache section; `methods`: {name: Method} of the config; `context`:
    the model's max_position_embeddings where known."""
    kv = config.get("kv_cache")
    if not kv:
        return []
    out = []
    for name, entry in (kv.get("caches") or {}).items():
        out += _cache_errors(name, entry or {})
    known = caches(config)
    for method, names in (kv.get("apply") or {}).items():
        if method not in methods:
            out.append(f"kv_cache.apply.{method}: not a method of this config; allowed: {', '.join(methods)}")
            continue
        gguf = get_backend(methods[method].backend).RUNTIME == "llama.cpp"
        for c in names or []:
            if c not in known:
                out.append(f"kv_cache.apply.{method}: cache {c!r} is not under kv_cache.caches; "
                           f"allowed: {', '.join(known) or '(none defined)'}")
            elif gguf != (known[c].runtime == "llama.cpp"):
                fit = [n for n, k in known.items() if (k.runtime == "llama.cpp") == gguf]
                runtime = "llama.cpp" if gguf else "transformers"
                out.append(f"kv_cache.apply.{method}: cache {c!r} (backend {known[c].backend}) does not run in "
                           f"{runtime}, which serves {method!r} (backend {methods[method].backend}); allowed: "
                           f"{', '.join(fit) or 'a cache of backend ' + ('llamacpp' if gguf else 'hqq or fp8')}")
    contexts = kv.get("contexts") or []
    if isinstance(context, int):
        out += [f"kv_cache.contexts: {c} is longer than the model's context ({context} tokens, "
                f"max_position_embeddings{' from ' + where if where else ''}); allowed: at most {context}"
                for c in contexts if c > context]
        decode = kv.get("decode_context")
        if isinstance(decode, int) and decode > context:
            out.append(f"kv_cache.decode_context: {decode} is longer than the model's context ({context} tokens); "
                       f"allowed: at most {context}")
    if list(contexts) != sorted(set(contexts)):
        out.append(f"kv_cache.contexts: {contexts} must be increasing without repeats; allowed: e.g. [512, 2048, 8192]")
    windows = kv.get("windows")
    if windows is not None and len(windows) != len(contexts):
        out.append(f"kv_cache.windows: {windows} names {len(windows)} counts for {len(contexts)} contexts; "
                   "allowed: one window count per entry of kv_cache.contexts")
    text = kv.get("text", DEFAULTS["text"])
    if text not in TEXTS and not str(text).endswith(".txt"):
        out.append(f"kv_cache.text: {text!r} is not a known text; allowed: {', '.join(TEXTS)} or a path to a .txt file")
    return out


def variants(config: dict, runnable: list[str]) -> list[str]:
    """The kv variants to measure: every applied method with its plain cache, then with each cache
    (methods the experiment skips are left out), the baseline's plain row first."""
    kv = config.get("kv_cache") or {}
    apply = kv.get("apply") or {}
    baseline = config.get("baseline")
    out = [baseline] if kv and baseline in runnable else []
    for method, names in apply.items():
        if method not in runnable:
            continue
        out += [method] + [f"{method}@{c}" for c in names or []]
    return list(dict.fromkeys(out))


def split(kv_variant: str) -> tuple[str, str | None]:
    """`bnb-nf4@kv-hqq4` -> ('bnb-nf4', 'kv-hqq4'); a plain-cache row -> (variant, None)."""
    variant, _, cache = kv_variant.partition("@")
    return variant, cache or None


def check(config: dict, methods: dict, basedir: str, workdir: str | None) -> None:
    """Raise ConfigError (one line per problem) where the kv_cache section is unsound; reads the model's
    context (max_position_embeddings) without loading it."""
    from quantbench.config_messages import ConfigError
    from quantbench.model_facts import model_facts

    if not config.get("kv_cache"):
        return
    facts = model_facts(config, basedir, workdir)
    problems = errors(config, methods, facts.context, facts.where)
    if problems:
        raise ConfigError(problems)
