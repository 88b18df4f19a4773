"""Write outputs under a temporary name and rename them into place only when complete.

A job killed at any moment (even SIGKILL) then leaves at most a hidden `.tmp-<name>.part-*` sibling,
never a folder or record that a later run could take for finished. The next write of the same
output removes such leftovers first (Snakemake runs at most one job per output, so a leftover of
the same name belongs to a dead job).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

TMP_PREFIX = ".tmp-"
TMP_MARK = ".part-"


def _tmp_pattern(final: Path) -> re.Pattern:
    # The mark after the name keeps `m` from matching the leftovers of a sibling named `m.v2`.
    suffix = f"(?:{re.escape(final.suffix)})?" if final.suffix else ""
    return re.compile(re.escape(f"{TMP_PREFIX}{final.name}{TMP_MARK}") + r"[A-Za-z0-9_]+" + suffix + "$")


def leftovers(root: str | Path) -> list[Path]:
    """Every unfinished output under root."""
    return sorted(p for p in Path(root).rglob(f"{TMP_PREFIX}*") if TMP_MARK in p.name)


def remove_leftovers(final: str | Path) -> list[Path]:
    """Remove what killed writers of `final` left behind; returns what was removed."""
    final = Path(final)
    if not final.parent.is_dir():
        return []
    pattern = _tmp_pattern(final)
    removed = []
    for p in final.parent.iterdir():
        if pattern.match(p.name):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def current_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def _tmp_sibling(final: Path, is_dir: bool) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(final)
    prefix = f"{TMP_PREFIX}{final.name}{TMP_MARK}"
    # mkstemp/mkdtemp make 0600/0700 (private temporary files); the output, once renamed into place,
    # gets the mode any file made here would: a group sharing a results folder can read it.
    if is_dir:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
        path.chmod(0o777 & ~current_umask())
        return path
    # Same suffix as the final file: writers that pick a format from the extension (matplotlib) work.
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=final.suffix, dir=final.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~current_umask())
    return Path(name)


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
            f.flush()
            os.fsync(f.fileno())  # a record survives a power loss once its name is visible


def read_json(path: str | Path):
    with open(path) as f:
        return json.load(f)
