"""Writes docs/configuration.md: every config key with its type, default, allowed values and meaning,
read from the JSON schema Snakemake validates the config with (workflow/schemas/config.schema.yaml),
and every method parameter from the backend that declares it (SPEC, DEFAULTS, REQUIRED and
DESCRIPTIONS in quantbench/backends/). Nothing here knows a key: edit the schema or the backend,
then run this.

    python tools/config_reference.py            # print the markdown
    python tools/config_reference.py --write    # write docs/configuration.md
    python tools/config_reference.py --check    # exit 1 if docs/configuration.md is not what it prints
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quantbench.backends import BACKENDS, calibrated  # noqa: E402
from quantbench.backends import get as get_backend  # noqa: E402

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
DOC = ROOT / "docs" / "configuration.md"
TYPE_NAMES = {"integer": "integer", "number": "number", "string": "string", "boolean": "boolean", "null": "null",
              "object": "mapping", "array": "list"}
PY_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "mapping", list: "list"}


@dataclass
class Row:
    key: str
    type: str
    default: str
    allowed: str
    required: str
    meaning: str


def _value(v) -> str:
    if isinstance(v, bool) or v is None:
        return {True: "true", False: "false", None: "null"}[v]
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def _code(v) -> str:
    return f"`{_value(v)}`"


def _type(s: dict) -> str:
    types = s.get("type")
    if types is None:
        return "any"
    types = [types] if isinstance(types, str) else types
    if "integer" in types and "number" in types:  # an integer is a number
        types = [t for t in types if t != "integer"]
    names = []
    for t in types:
        if t == "array" and isinstance(s.get("items"), dict) and "type" in s["items"]:
            names.append(f"list of {_type(s['items'])}")
        elif t == "object" and not s.get("properties") and isinstance(s.get("additionalProperties"), dict):
            names.append(f"map of name → {_type(s['additionalProperties'])}")
        else:
            names.append(TYPE_NAMES[t])
    return " or ".join(names)


def _bounds(s: dict) -> list[str]:
    out = []
    for key, op in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in s:
            out.append(f"{op} {_value(s[key])}")
    return out


def _allowed(s: dict) -> str:
    parts = []
    if "enum" in s:
        parts.append(", ".join(_code(v) for v in s["enum"]))
    if "const" in s:
        parts.append(_code(s["const"]))
    parts += _bounds(s)
    if "pattern" in s:
        parts.append(f"matches `{s['pattern']}`")
    items = s.get("items") if isinstance(s.get("items"), dict) else {}
    if "minItems" in s:
        parts.append(f"at least {s['minItems']} item{'s' if s['minItems'] > 1 else ''}")
    if s.get("uniqueItems"):
        parts.append("no repeats")
    if "enum" in items:
        parts.append("each one of " + ", ".join(_code(v) for v in items["enum"]))
    item_bounds = _bounds(items)
    if item_bounds:
        parts.append("each " + ", ".join(item_bounds))
    if "minProperties" in s:
        parts.append(f"at least {s['minProperties']} entr{'ies' if s['minProperties'] > 1 else 'y'}")
    return "; ".join(parts)


def _meaning(text: str) -> str:
    # <name> placeholders would read as HTML tags in a rendered table: set them as code.
    text = re.sub(r"[^\s,;()]*<[^>\s]+>[^\s,;()]*", lambda m: f"`{m.group(0)}`", " ".join(text.split()))
    return text.replace("|", "\\|")


def _condition(schema_if: dict, path: str = "") -> str:
    """The root's `if` as words: 'model.kind is encoder'."""
    for name, sub in (schema_if.get("properties") or {}).items():
        key = f"{path}.{name}" if path else name
        if "const" in sub:
            return f"{key} is {_value(sub['const'])}"
        found = _condition(sub, key)
        if found:
            return found
    return ""


def _rows(s: dict, key: str, required: str) -> list[Row]:
    """The key itself, then what is inside it: properties, list items that are mappings, map entries."""
    rows = [Row(key, _type(s), _code(s["default"]) if "default" in s else "", _allowed(s), required,
                _meaning(s.get("description", "")))]
    rows += _children(s, key)
    items = s.get("items")
    if isinstance(items, dict) and items.get("type") == "object":
        rows += _children(items, f"{key}[]")
    extra = s.get("additionalProperties")
    if isinstance(extra, dict) and extra.get("type") == "object" and key != "methods":
        rows += _rows(extra, f"{key}.<name>", "")[0:1] + _children(extra, f"{key}.<name>")
    return rows


def _children(s: dict, key: str) -> list[Row]:
    need = set(s.get("required") or [])
    out = []
    for name, sub in (s.get("properties") or {}).items():
        out += _rows(sub, f"{key}.{name}" if key else name, "yes" if name in need else "")
    return out


def _table(rows: list[Row]) -> list[str]:
    lines = ["| Key | Type | Default | Allowed | Required | Meaning |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r.key}` | {r.type} | {r.default} | {r.allowed} | {r.required} | {r.meaning} |")
    return lines


def _backend_rows(name: str) -> list[Row]:
    b = get_backend(name)
    rows = []
    for param, allowed in b.SPEC.items():
        if isinstance(allowed, list):
            kinds = sorted({PY_TYPES[type(v)] for v in allowed})
            type_name = "number" if kinds == ["integer", "number"] else " or ".join(kinds)
            allowed_text = ", ".join(_code(v) for v in allowed)
        else:
            type_name, allowed_text = PY_TYPES[allowed], ""
        rows.append(Row(f"methods.<name>.{param}", type_name, _code(b.DEFAULTS[param]) if param in b.DEFAULTS else "",
                        allowed_text, "yes" if param in b.REQUIRED else "",
                        _meaning(b.DESCRIPTIONS.get(param, "")) + (" (load time)" if param in b.LOAD_ONLY else "")))
    return rows


# What a backend's methods may be used for, as its class says (quantbench/backends/base.py)
ROLES = {"CALIBRATED": "read calibration texts", "REQUANTIZE_TARGET": "may be a recipe's `requantize` target",
         "SENSITIVITY": "may be named in `sensitivity.methods`",
         "can_dequantize": "may be a fine-tune base for `merge_into: dequant`"}


def _backend_summary(name: str) -> str:
    doc = importlib.import_module(f"quantbench.backends.{name}").__doc__ or ""
    first = " ".join(doc.split("\n\n")[0].split())
    roles = [what for fact, what in ROLES.items() if getattr(get_backend(name), fact)]
    return _meaning(first.split(". ")[0].rstrip(".") + ".") + (f" Its methods {'; '.join(roles)}." if roles else "")


def _methods_section(schema: dict) -> list[str]:
    s = schema["properties"]["methods"]
    rows = _rows(s, "methods", "yes" if "methods" in schema.get("required", []) else "")
    rows.append(Row("methods.<name>.backend", "string", "", ", ".join(_code(b) for b in BACKENDS), "yes",
                    "the library that quantizes and runs the method; the other keys depend on it"))
    rows.append(Row("methods.<name>.replicates", "integer", _code(1), "an integer >= 1; above 1 only on a calibrated "
                    "backend (" + ", ".join(_code(b) for b in BACKENDS if calibrated(b)) + ")", "",
                    "calibration draws: replicate k >= 2 is the variant <name>~r<k>, quantized from its own seed and "
                    "sample of the calibration texts and evaluated, not benchmarked (docs/methodology.md)"))
    lines = ["## methods", "", *_table(rows), ""]
    for name in BACKENDS:
        lines += [f"### backend: {name}", "", _backend_summary(name), "", *_table(_backend_rows(name)), ""]
    return lines


def render(schema: dict) -> str:
    top = schema["properties"]
    need = set(schema.get("required") or [])
    condition = _condition(schema.get("if") or {})
    for k in (schema.get("then") or {}).get("required", []):
        need.add(k)
    conditional = {k: f"if {condition}" for k in (schema.get("then") or {}).get("required", [])}
    conditional |= {k: f"unless {condition}" for k in (schema.get("else") or {}).get("required", [])}

    def required(name):
        return conditional.get(name) or ("yes" if name in need else "")

    lines = ["# Configuration reference", "",
             "<!-- Generated by tools/config_reference.py from workflow/schemas/config.schema.yaml and the "
             "backends' parameters (quantbench/backends/); edit those, then run "
             "`python tools/config_reference.py --write`. -->", "",
             _meaning(schema.get("description", "")), "",
             "A setup file (config/*.yaml) sets these keys; `--configfile` names it (README.md). Keys are "
             "dotted paths: `a[]` is an entry of list `a`, `a.<name>` an entry of map `a` under a name "
             "you choose. A default is what the schema fills in when the key is left out; defaults the "
             "code applies are named in the meaning. Load-time method parameters are chosen when the "
             "model is loaded, not stored in it: methods differing only there share one quantized model.", ""]
    general = [n for n, s in top.items() if s.get("type") != "object" and not s.get("items", {}).get("properties")]
    lines += ["## General", "", *_table([r for n in general for r in _rows(top[n], n, required(n))]), ""]
    for name, s in top.items():
        if name in general:
            continue
        if name == "methods":
            lines += _methods_section(schema)
            continue
        lines += [f"## {name}", "", *_table(_rows(s, name, required(name))), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"write {os.path.relpath(DOC, ROOT)}")
    p.add_argument("--check", action="store_true", help=f"exit 1 if {os.path.relpath(DOC, ROOT)} differs")
    args = p.parse_args()
    text = render(yaml.safe_load(SCHEMA.read_text()))
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{os.path.relpath(DOC, ROOT)} is not what tools/config_reference.py generates from "
                  f"{os.path.relpath(SCHEMA, ROOT)}; run: python tools/config_reference.py --write", file=sys.stderr)
            return 1
        return 0
    if args.write:
        DOC.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
