import os

import pytest

from quantbench import atomic
from quantbench.atomic import atomic_dir, read_json, write_json


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "half-written.bin").write_bytes(b"x")
            raise RuntimeError("killed")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_existing(tmp_path):
    final = tmp_path / "model"
    final.mkdir()
    (final / "old").write_text("old")
    with atomic_dir(final) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new"]


def test_write_json_round_trip(tmp_path):
    write_json(tmp_path / "r.json", {"a": 1.5})
    assert read_json(tmp_path / "r.json") == {"a": 1.5}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_outputs_get_the_mode_the_umask_gives(tmp_path, umask, file_mode, dir_mode):
    """Records and model folders are readable by whoever the umask lets read a new file (a group
    sharing a results folder), not private as the temporary names they are written under."""
    old = os.umask(umask)
    try:
        atomic.write_json(tmp_path / "record.json", {"a": 1})
        with atomic.atomic_dir(tmp_path / "model") as d:
            (d / "weights.bin").write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "record.json").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "model").stat().st_mode & 0o777 == dir_mode
    assert (tmp_path / "model" / "weights.bin").stat().st_mode & 0o777 == file_mode
