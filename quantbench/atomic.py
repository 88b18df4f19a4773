"""Write outputs under a temporary name and rename them into place only when complete.

A job killed at any moment (even SIGKILL) then leaves at most a hidden `.tmp-*` sibling, never a
folder or record that a later run could take for finished.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

TMP_PREFIX = ".tmp-"


def _tmp_sibling(final: Path, is_dir: bool) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    make = tempfile.mkdtemp if is_dir else tempfile.mkstemp
    created = make(prefix=f"{TMP_PREFIX}{final.name}.", dir=final.parent)
    if not is_dir:
        os.close(created[0])
        created = created[1]
    return Path(created)


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces `final` in one rename."""
    final = Path(final)
    tmp = _tmp_sibling(final, is_dir=True)
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(final: str | Path) -> Iterator[Path]:
    """Yield a temporary file path; on success it replaces `final` in one rename."""
    final = Path(final)
    tmp = _tmp_sibling(final, is_dir=False)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, obj) -> None:
    with atomic_file(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=str)
            f.write("\n")


def read_json(path: str | Path):
    with open(path) as f:
        return json.load(f)
