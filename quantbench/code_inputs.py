"""The quantbench modules a workflow script runs, found by reading its imports (and theirs).

Rules list them as inputs, so that editing the library reruns exactly the jobs that run the edited
code: Snakemake tracks a script given as an input, not the modules it imports. Imports inside
functions count too. Backends are imported by name at run time (quantbench.backends.get), which
no import statement shows: a rule names the backends its job loads.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = "quantbench"


def _module_file(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def _imports(path: Path, root: Path) -> frozenset[str]:
    """Dotted names of the quantbench modules (and their packages) one file imports."""
    rel = path.relative_to(root) if path.is_relative_to(root) else None
    package = list(rel.parent.parts) if rel else []
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = (package[:len(package) - node.level + 1] if node.level else []) + (node.module or "").split(".")
            base = ".".join(p for p in parts if p)
            # `from quantbench import cli` imports the module quantbench.cli, not a name in __init__.
            names.update([base] + [f"{base}.{a.name}" for a in node.names])
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == PACKAGE:
            found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(found)


@functools.lru_cache(maxsize=None)
def modules(script: str, root: str, backends: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Files of every quantbench module `script` imports, directly or through others, plus the named
    backends and what they import; sorted paths under `root` (the project)."""
    root_path = Path(root).resolve()
    todo = [Path(script).resolve()] + [f for b in backends
                                       if (f := _module_file(root_path, f"{PACKAGE}.backends.{b}"))]
    seen = set(todo[1:])
    while todo:
        for name in _imports(todo.pop(), root_path):
            found = _module_file(root_path, name)
            if found is not None and found not in seen:
                seen.add(found)
                todo.append(found)
    return tuple(sorted(str(f) for f in seen))
