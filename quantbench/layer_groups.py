"""How the linear layers of a decoder model are grouped for sensitivity and mixed precision: by
decoder block (every projection of block 3), by projection kind (every v_proj) or by cell (block 3's
v_proj). Names follow transformers' module paths (model.layers.<i>.<...>.<kind>)."""
from __future__ import annotations

import re

FAMILIES = ("block", "projection", "cell")
BLOCK_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.(?:.*\.)?([A-Za-z0-9_]+)$")


def units_of(names) -> dict[str, tuple[int, str]]:
    """module name -> (block index, projection kind), for the names inside a decoder block."""
    out = {}
    for name in names:
        m = BLOCK_RE.search(name)
        if m:
            out[name] = (int(m[1]), m[2])
    return out


def group_name(family: str, block: int, kind: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"{family!r} is not a layer group; allowed: {', '.join(FAMILIES)}")
    return {"block": f"block.{block}", "projection": f"proj.{kind}", "cell": f"cell.{block}.{kind}"}[family]
