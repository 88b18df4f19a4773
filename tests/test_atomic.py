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


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_saved_weights_adapters_records_and_figures_take_the_umask_mode(tiny_model, tmp_path, umask, file_mode,
                                                                        dir_mode):
    """safetensors writes weights 0600 whatever the umask, so a model folder in a group's results
    folder was unreadable to the group; the publish step gives every file and folder the umask's mode.
    The outputs are written as the jobs write them: save_pretrained (model, tokenizer, a PEFT adapter),
    a record, a matplotlib figure, and a second name for a checkpoint (modelio.link_tree)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from quantbench.modelio import link_tree

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    results = tmp_path / "results" / "tiny"
    old = os.umask(umask)
    try:
        model.save_pretrained(tmp_path / "direct")  # the writer's own mode, without the publish step
        with atomic.atomic_dir(results / "models" / "fp32") as d:
            model.save_pretrained(d)
            tokenizer.save_pretrained(d)
        with atomic.atomic_dir(results / "models" / "fp32-again") as d:
            link_tree(results / "models" / "fp32", d)
        adapter = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
        with atomic.atomic_dir(results / "adapters" / "fp32+lora") as d:
            adapter.save_pretrained(d)
        atomic.write_json(results / "records" / "quantize" / "fp32.json", {"metrics": {"size_mb": 1.0}})
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        with atomic.atomic_file(results / "report" / "figure.png") as f:
            fig.savefig(f)
        plt.close(fig)
    finally:
        os.umask(old)
    assert (tmp_path / "direct" / "model.safetensors").stat().st_mode & 0o777 == 0o600
    outputs = sorted(results.rglob("*"))
    names = {p.relative_to(results).as_posix() for p in outputs}
    assert {"models/fp32/model.safetensors", "models/fp32-again/model.safetensors", "models/fp32/tokenizer.json",
            "adapters/fp32+lora/adapter_model.safetensors", "records/quantize/fp32.json",
            "report/figure.png"} <= names, names
    wrong = {p.relative_to(results).as_posix(): oct(p.stat().st_mode & 0o777) for p in outputs
             if p.stat().st_mode & 0o777 != (dir_mode if p.is_dir() else file_mode)}
    assert wrong == {}
    assert not atomic.leftovers(results)
