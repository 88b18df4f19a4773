"""Config problems as the user reads them: one line each, the key as a dotted path
(`benchmark.prefill.batch_sizes[0]`), the value, and what is allowed (with a did-you-mean for a near
miss). The JSON schema's own errors are rewritten here; quantbench.validation writes the rest."""
from __future__ import annotations

import difflib
import json
from pathlib import Path

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A config problem, reported before any job runs."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("invalid config:\n  - " + "\n  - ".join(errors))


_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "null"}


def show(value) -> str:
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
        return [f"{join(key, k)}: missing; required in {where}"
                for k in val if isinstance(inst, dict) and k not in inst]
    if kind == "additionalProperties" and isinstance(inst, dict):
        allowed = list(schema.get("properties", {}))
        return [f"{join(key, k)}: unknown key;{did_you_mean(k, allowed)} allowed in {where}: {', '.join(allowed)}"
                for k in inst if k not in allowed]
    if kind == "type":
        types = [val] if isinstance(val, str) else val
        return [f"{key}: {show(inst)} must be {' or '.join(_TYPE_NAMES.get(t, t) for t in types)}"]
    if kind == "enum":
        return [f"{key}: {show(inst)} is not allowed; allowed: {', '.join(map(str, val))}"]
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
        return [f"{key}: {show(inst)} is out of range; allowed: {op} {val}{hint}"]
    if kind == "minItems":
        return [f"{key}: needs at least {val} item(s), got {len(inst)}"]
    if kind == "minProperties":
        return [f"{key}: needs at least {val} entry(ies)"]
    if kind == "pattern":
        return [f"{key}: {show(inst)} is not allowed; allowed: letters, digits, '_', '.' and '-', "
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
