"""What the model and the data can hold, read without loading weights: the model's type, context
length and layer widths (ModelFacts, model_dims), sequence lengths against that context, and LoRA
target_modules against the linear layers PEFT can wrap."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from quantbench.backends import get as get_backend
from quantbench.config_messages import did_you_mean
from quantbench.experiment import Method
from quantbench.source_checks import HUB_ID_RE, gguf_info, hub_cached, resolve

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
    layers: int | None = None  # num_hidden_layers of a random architecture: what model.num_hidden_layers may cut to
    tied_head: bool | None = None  # the output head shares the input embedding's table (tie_word_embeddings)


def _model_config_json(config: dict, basedir: str, workdir: str | None) -> tuple[dict | None, str]:
    """The config.json of a random architecture or a pretrained model (local, or in the hub cache)."""
    model = config.get("model") or {}
    path = model.get("architecture") if model.get("source") == "random" else model.get("path")
    if model.get("source") not in ("random", "pretrained") or not isinstance(path, str) or not path:
        return None, ""
    found = resolve(path, basedir, *([workdir] if workdir else []))
    if found is None and model.get("source") == "pretrained" and HUB_ID_RE.match(path):
        cached = hub_cached(path)
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
        return ModelFacts("llama", (model.get("toy") or {}).get("max_position_embeddings"), "model.toy",
                          tied_head=False)
    if source == "gguf":
        info = gguf_info(model.get("path"), workdir)
        return ModelFacts(info.architecture, info.context_length, model["path"]) if info else ModelFacts(None, None, "")
    arch, where = _model_config_json(config, basedir, workdir)
    if arch is None:
        return ModelFacts(None, None, where)
    ctx = next((arch[k] for k in ("max_position_embeddings", "n_positions", "max_sequence_length")
                if isinstance(arch.get(k), int)), None)
    layers = arch.get("num_hidden_layers") if source == "random" else None
    tied = arch.get("tie_word_embeddings")  # absent: the architecture's own default, not read here
    return ModelFacts(arch.get("model_type"), ctx, where, layers if isinstance(layers, int) else None,
                      tied if isinstance(tied, bool) else None)


def model_dims(config: dict, basedir: str = ".", workdir: str | None = None) -> list[int] | None:
    """Input widths of the model's linear layers (what a GPTQ group size must divide), read
    without loading weights; None when unknown (a hub id that is not in the local cache)."""
    model = config.get("model") or {}
    if model.get("source") == "toy":
        toy = model.get("toy") or {}
        dims = [toy.get("hidden_size"), toy.get("intermediate_size")]
        return [d for d in dims if isinstance(d, int)] or None
    if model.get("source") == "gguf":
        info = gguf_info(model.get("path"), workdir)
        return info.layer_widths if info else None
    arch, _ = _model_config_json(config, basedir, workdir)
    if arch is None:
        return None
    return [d for d in (arch.get("hidden_size"), arch.get("intermediate_size")) if isinstance(d, int)] or None


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


def layer_count_errors(config: dict, facts: ModelFacts) -> list[str]:
    """model.num_hidden_layers keeps the first layers of a random architecture: it cannot add any (the
    build job stopped on this, after the jobs before it)."""
    wanted = (config.get("model") or {}).get("num_hidden_layers")
    if not isinstance(wanted, int) or facts.layers is None or wanted <= facts.layers:
        return []
    return [f"model.num_hidden_layers: {wanted} is more than the {facts.layers} layers of {facts.where} (its "
            f"num_hidden_layers); allowed: 1 to {facts.layers}"]


def head_quantization_errors(methods: dict[str, Method], facts: ModelFacts) -> list[str]:
    """A GPTQ method's lm_head: true needs an output head of its own: GPTQModel refuses a head tied to
    the input embedding (the quantize job would stop on it, after the jobs before it)."""
    if not facts.tied_head:
        return []
    return [f"methods.{m.name}.lm_head: true, but the output head of {facts.where} is tied to its input embedding "
            "(tie_word_embeddings: true), which GPTQModel does not quantize; allowed: false for this model"
            for m in methods.values() if "lm_head" in get_backend(m.backend).SPEC and m.params.get("lm_head")]


def context_errors(config: dict, facts: ModelFacts) -> list[str]:
    ctx = facts.context
    if not isinstance(ctx, int):
        return []
    return [f"{key}: {value}{how} is longer than the model's context ({ctx} tokens, max_position_embeddings "
            f"from {facts.where}); allowed: at most {ctx}"
            for key, value, how in _sequence_lengths(config) if value > ctx]


def lora_target_errors(config: dict, methods: dict[str, Method], facts: ModelFacts, notes: list[str]) -> list[str]:
    """target_modules as PEFT matches them: a list entry names a module or a dotted suffix of its name;
    a string is a regular expression over whole module names, or 'all-linear'."""
    ft = config.get("finetune") or {}
    targets = (ft.get("lora") or {}).get("target_modules")
    bases = set(ft.get("bases") or []) | {r.get("finetune_on") for r in config.get("recipes") or []}
    if targets is None or not bases:
        return []
    key = "finetune.lora.target_modules"
    gptqmodel = sorted(b for b in bases if b in methods and get_backend(methods[b].backend).GPTQMODEL_LAYERS)
    layers = LORA_LAYERS.get(facts.model_type)
    example = f"[{', '.join(n.split('.')[-1] for n in layers or _LLAMA_LAYERS)}]"
    if isinstance(targets, str) and targets.lower() == "all-linear":
        if gptqmodel:
            return [f"{key}: 'all-linear' finds no layer to train on the GPTQ/AWQ base(s) {', '.join(gptqmodel)}: PEFT "
                    "takes torch.nn.Linear layers only, GPTQModel's quantized layers are not, and it leaves out "
                    "lm_head; "
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
