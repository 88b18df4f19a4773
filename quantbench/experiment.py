"""The experiment a config describes: methods, fine-tune bases, recipes and the variants they produce.

A method is named once in the config; everything else (rules, file names, report labels) derives
from that entry through this module. A *variant* is a model the workflow produces and measures:

    <method>                                   a quantized (or baseline) model
    <method>+lora                              a LoRA adapter trained on that model, served unmerged
    <method>+lora+merge-<fp|dequant>           the adapter merged into a full-precision base
    <method>+lora+merge-<fp|dequant>+<method>  that merged model re-quantized for deployment

The data model only: quantbench.validation checks a config and builds an Experiment from it
(validation.load), quantbench.config_messages words the problems.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from quantbench.backends import get as get_backend
from quantbench.calibration_draw import replicate_name, split_name

MERGE_KINDS = ("fp", "dequant")
VARIANT_RE = re.compile(r"^(?P<base>[^+]+)(?P<lora>\+lora)?(?:\+merge-(?P<merge>fp|dequant))?"
                        r"(?:\+(?P<requant>[^+]+))?$")


@dataclass(frozen=True)
class Method:
    name: str
    backend: str
    params: dict
    # calibration draws quantized and evaluated (calibrated backends only; quantbench.calibration_draw)
    replicates: int = 1

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


def parse_variant(name: str) -> Variant:
    m = VARIANT_RE.match(name)
    if not m:
        raise ValueError(f"not a variant name: {name!r}")
    return Variant(name, m["base"], bool(m["lora"]), m["merge"], m["requant"])


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

    @property
    def replicas(self) -> dict[str, tuple[str, int]]:
        """Replicate k >= 2 of each runnable method with `replicates`: name -> (method, k). Replicates are
        quantized and evaluated only: speed does not depend on the calibration draw, and a fine-tune or a
        recipe starts from the method itself."""
        return {replicate_name(m, k): (m, k) for m in self.runnable
                for k in range(2, self.methods[m].replicates + 1)}

    def method(self, name: str) -> Method:
        """A method by name, a replicate's (`<method>~r<k>`) being its method's."""
        return self.methods[split_name(name)[0] if name in self.replicas else name]

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
        return self.method(variant.base)


def config_hash(config: dict) -> str:
    """A short hash of the whole (defaults-filled) config: records carry it as provenance."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
