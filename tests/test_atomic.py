import pytest

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
