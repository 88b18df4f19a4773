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
    if is_dir:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
    # Same suffix as the final file: writers that pick a format from the extension (matplotlib) work.
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=final.suffix, dir=final.parent)
    os.close(fd)
    return Path(name)


def umask_mode(path: Path, umask: int) -> int:
    """The mode a file or folder made here would get: 0666 (0777 for folders and executables) less
    the umask."""
    st = path.lstat()
    full = 0o777 if path.is_dir() or st.st_mode & 0o111 else 0o666
    return full & ~umask


def give_umask_mode(root: Path) -> None:
    """Give an output and everything under it the umask's mode, as it is published. Its temporary
    name came from mkstemp/mkdtemp (0600/0700), and writers choose their own modes too (safetensors
    writes weights 0600): a group sharing a results folder could read none of it.

    A hard-linked file (a second name for another output's checkpoint, modelio.link_tree) shares its
    mode with that output, which is given the same mode. Files of another owner cannot be changed and
    are left alone, as are symbolic links (they have no mode of their own). Set-group-ID and sticky
    bits are kept: a group folder's setgid passes its group to new folders."""
    umask, me = current_umask(), os.geteuid()
    paths = [root] + (sorted(root.rglob("*")) if root.is_dir() and not root.is_symlink() else [])
    for path in paths:
        st = path.lstat()
        if path.is_symlink() or st.st_uid != me:
            continue
        mode = (st.st_mode & 0o7000) | umask_mode(path, umask)
        if st.st_mode & 0o7777 != mode:
            path.chmod(mode)


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces `final` in one rename."""
    final = Path(final)
    tmp = _tmp_sibling(final, is_dir=True)
    try:
        yield tmp
        give_umask_mode(tmp)
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
        give_umask_mode(tmp)
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
