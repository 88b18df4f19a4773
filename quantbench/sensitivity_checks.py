"""The `sensitivity:` section and the mixed-precision methods that read it, checked before any job:
each problem one line naming the key and what is allowed."""
from __future__ import annotations

from quantbench.backends import UNQUANTIZED, having
from quantbench.backends import get as get_backend
from quantbench.config_messages import did_you_mean
from quantbench.experiment import Method
from quantbench.layer_groups import FAMILIES
from quantbench.model_facts import LORA_LAYERS, ModelFacts

# what makes two GPTQ methods the same scheme for an allocation (damping is a calibration detail)
STORED = ("group_size", "desc_act", "sym")


def sensitivity_errors(config: dict, methods: dict[str, Method]) -> list[str]:
    sens = config.get("sensitivity")
    errors = []
    if sens is not None:
        if not config.get("evaluate"):
            errors.append("sensitivity: needs evaluate: (its held-out tokens and the baseline's reference "
                          "log-probs); allowed: a setup with an evaluate: section")
        # backends whose model keeps a torch module per linear layer (Backend.SENSITIVITY)
        able = having("SENSITIVITY")
        for i, name in enumerate(sens.get("methods", [])):
            movable = [n for n, m in methods.items() if m.backend in able]
            if name not in methods:
                errors.append(f"sensitivity.methods[{i}]: {name!r} is not a method;{did_you_mean(name, movable)} "
                              f"allowed: {', '.join(movable) or '(none)'}")
            elif (methods[name].params.get("mix") or {}).get("rule", "sensitivity") == "sensitivity" \
                    and methods[name].params.get("mix"):
                errors.append(f"sensitivity.methods[{i}]: {name!r} allocates its bits from the sensitivity records, "
                              "so it cannot be one of their methods; allowed: uniform methods")
            elif methods[name].backend not in able:
                errors.append(f"sensitivity.methods[{i}]: {name!r} uses backend {methods[name].backend!r}, whose "
                              f"model has no torch layers to move one group at a time; allowed: backends "
                              f"{', '.join(able)}")
    if errors:  # a mix's own checks read the sensitivity methods: only once those are sound
        return errors
    for name, m in methods.items():
        errors += _mix_errors(name, m, sens, methods)
    return errors


def _mix_errors(name: str, m: Method, sens: dict | None, methods: dict[str, Method]) -> list[str]:
    """A mix by measured sensitivity needs records of the same scheme at both of its widths."""
    mix = m.params.get("mix") if "mix" in get_backend(m.backend).SPEC else None
    if not mix or mix.get("rule", "sensitivity") != "sensitivity":
        return []
    key = f"methods.{name}.mix"
    unit = mix.get("unit", "cell")
    budget = mix.get("budget_bits")
    sized = [n for n, x in methods.items() if x.backend != UNQUANTIZED and not x.params.get("mix")]
    if isinstance(budget, str) and budget != "kquant" and budget not in sized:
        return [f"{key}.budget_bits: {budget!r} is neither kquant nor a uniform quantized method whose file sets the "
                f"size;{did_you_mean(budget, sized)} allowed: a number, kquant, {', '.join(sized)}"]
    if sens is None:
        return [f"{key}: rule sensitivity reads the sensitivity stage's records; add sensitivity: {{methods: [...]}} "
                f"with GPTQ methods at bits {m.params['bits']} and {mix.get('high_bits')}, or use rule: kquant"]
    errors = []
    if unit not in sens.get("groups", list(FAMILIES)):
        errors.append(f"{key}.unit: {unit!r} is not measured; allowed: {', '.join(sens.get('groups', FAMILIES))} "
                      "(sensitivity.groups)")
    if sens.get("kinds") and unit != "block":
        errors.append(f"{key}.unit: {unit!r} needs every projection kind measured, and sensitivity.kinds limits "
                      "them; allowed: unit block, or no sensitivity.kinds")
    same = [n for n in sens.get("methods", []) if n in methods and methods[n].backend == m.backend
            and all(methods[n].params.get(k) == m.params.get(k) for k in STORED)
            and not methods[n].params.get("mix")]
    have = {methods[n].params["bits"] for n in same}
    for bits in (m.params["bits"], mix.get("high_bits")):
        if bits not in have:
            errors.append(f"{key}: no sensitivity method is GPTQ at {bits} bits with this method's "
                          f"{', '.join(f'{k} {m.params.get(k)}' for k in STORED)}; allowed: add one to "
                          f"sensitivity.methods (measured: {', '.join(same) or 'none of this scheme'})")
    return errors


def sensitivity_kind_errors(config: dict, facts: ModelFacts, notes: list[str]) -> list[str]:
    """sensitivity.kinds (projection kinds to measure) against the model's layer names."""
    kinds = (config.get("sensitivity") or {}).get("kinds")
    if not kinds:
        return []
    layers = LORA_LAYERS.get(facts.model_type)
    if layers is None:
        notes.append("sensitivity.kinds: cannot be checked before the run (model type unknown); the sensitivity "
                     "job stops if a kind matches no layer")
        return []
    short = [n.split(".")[-1] for n in layers]
    return [f"sensitivity.kinds[{i}]: {k!r} matches no layer of this {facts.model_type} model;"
            f"{did_you_mean(k, short)} allowed: {', '.join(short)}" for i, k in enumerate(kinds) if k not in short]
