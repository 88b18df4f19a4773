"""docs/configuration.md is the generator's output for the schema and backends as committed, and it
names every key the schema and the backends define, each with a meaning."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import yaml

from quantbench.backends import BACKENDS
from quantbench.backends import get as get_backend
from tests.conftest import ROOT

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
DOC = ROOT / "docs" / "configuration.md"


def _generator():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "tools" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def _schema_keys(s: dict, prefix: str = "") -> dict[str, dict]:
    """Every key the schema defines, as docs/configuration.md spells it (a[] for list entries,
    a.<name> for map entries), with its sub-schema."""
    out = {}
    for name, sub in (s.get("properties") or {}).items():
        key = f"{prefix}.{name}" if prefix else name
        out[key] = sub
        out |= _schema_keys(sub, key)
        if isinstance(sub.get("items"), dict):
            out |= _schema_keys(sub["items"], f"{key}[]")
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict) and extra.get("properties"):
            out[f"{key}.<name>"] = extra
            out |= _schema_keys(extra, f"{key}.<name>")
    return out


def _doc_rows() -> dict[str, list[list[str]]]:
    """Key -> the table rows naming it (methods' parameters appear once per backend)."""
    rows: dict[str, list[list[str]]] = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| `([^`]+)` \|(.*)\|$", line)
        if m:
            rows.setdefault(m.group(1), []).append([c.strip() for c in m.group(2).split(" | ")])
    return rows


def test_committed_doc_is_the_generators_output():
    proc = subprocess.run([sys.executable, "tools/config_reference.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert DOC.read_text() == _generator().render(yaml.safe_load(SCHEMA.read_text()))


def test_check_mode_fails_on_a_stale_doc(tmp_path, monkeypatch):
    gen = _generator()
    stale = tmp_path / "configuration.md"
    stale.write_text(DOC.read_text().replace("| `seed` |", "| `random_seed` |"))
    monkeypatch.setattr(gen, "DOC", stale)
    monkeypatch.setattr(sys, "argv", ["config_reference.py", "--check"])
    assert gen.main() == 1


def test_every_schema_key_is_in_the_doc_with_a_meaning():
    keys = _schema_keys(yaml.safe_load(SCHEMA.read_text()))
    assert len(keys) > 100  # the walk reached the nested sections
    rows = _doc_rows()
    missing = [k for k in keys if k not in rows]
    assert not missing, f"schema keys missing from docs/configuration.md: {missing}"
    undescribed = [k for k, sub in keys.items() if not sub.get("description")]
    assert not undescribed, f"schema keys without a description (add one to {SCHEMA.name}): {undescribed}"


def test_every_backend_parameter_is_in_the_doc_with_a_meaning():
    text = DOC.read_text()
    for name in BACKENDS:
        backend = get_backend(name)
        section = text.split(f"### backend: {name}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
        for param in backend.SPEC:
            assert f"| `methods.<name>.{param}` |" in section, (name, param)
            assert backend.DESCRIPTIONS.get(param), f"backend {name!r}: parameter {param!r} has no DESCRIPTIONS entry"
