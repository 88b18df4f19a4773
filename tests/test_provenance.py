"""Every result record says what produced it (libraries, commit, device, config hash, seed, command),
and the report warns when it mixes records of different provenance."""
from __future__ import annotations

import copy
import json
import os
import sys

import pandas as pd

from quantbench import experiment
from quantbench.records import Recorder
from quantbench.report import markdown


def _record(tmp_path, monkeypatch, name="r.json", config_hash="0123456789abcdef"):
    monkeypatch.setenv("QUANTBENCH_CONFIG_HASH", config_hash)
    rec = Recorder("quantize", "bnb-nf4", {"variant": "bnb-nf4", "seed": 3}, "cpu", 3)
    rec.record["metrics"] = {"quantize_s": 1.0}
    rec.write(tmp_path / name)
    return json.loads((tmp_path / name).read_text())


def test_record_carries_full_provenance(tmp_path, monkeypatch):
    prov = _record(tmp_path, monkeypatch)["provenance"]
    for lib in ("torch", "transformers", "bitsandbytes", "gptqmodel", "peft", "lm_eval", "python"):
        assert prov["libraries"][lib], lib
    assert prov["git_commit"] and prov["device"] == "cpu" and prov["cpu"] and prov["host"]
    assert prov["seed"] == 3 and prov["config_hash"] == "0123456789abcdef" and len(prov["params_hash"]) == 16
    assert prov["command"] == " ".join(sys.argv) and prov["started"] <= prov["finished"]
    # what selects the kernels, which the CPU's name alone does not tell
    assert isinstance(prov["cpu_flags"], str) and prov["kernels"]["aten_cpu_capability"]
    assert set(prov["kernels"]) >= {"ATEN_CPU_CAPABILITY", "MKL_CBWR"}


def test_config_hash_is_stable_and_sensitive():
    config = {"model": {"name": "m", "source": "toy"}, "methods": {"a": {"backend": "none"}}, "seed": 1}
    reordered = {"seed": 1, "methods": {"a": {"backend": "none"}}, "model": {"source": "toy", "name": "m"}}
    assert experiment.config_hash(config) == experiment.config_hash(reordered)
    changed = copy.deepcopy(config)
    changed["seed"] = 2
    assert experiment.config_hash(changed) != experiment.config_hash(config)


def _records(**overrides):
    base = {"git_commit": "abc", "libraries": {"torch": "2.13.0"}, "device": "cpu", "cpu": "Xeon",
            "seed": 1, "config_hash": "h1"}
    out = [{"provenance": dict(base)}, {"provenance": dict(base)}]
    out[1]["provenance"].update(overrides)
    return out


def test_no_warning_for_records_of_one_provenance():
    assert markdown.provenance_warnings(_records()) == []
    # a config edit that reran only some jobs leaves records of other config hashes: expected, no warning
    assert markdown.provenance_warnings(_records(config_hash="h2")) == []


def test_warning_names_each_field_that_differs():
    warnings = markdown.provenance_warnings(_records(git_commit="def+dirty", libraries={"torch": "2.12.0"}))
    assert len(warnings) == 2
    assert "`git_commit`" in warnings[0] and "abc" in warnings[0] and "def+dirty" in warnings[0]
    assert "`libraries`" in warnings[1] and "2.12.0" in warnings[1]
    assert "`device`" in markdown.provenance_warnings(_records(device="cuda", gpu="H100"))[0]
    # one CPU name, two instruction sets: the kernels, and so the numbers, differ
    assert "`cpu_flags`" in markdown.provenance_warnings(_records(cpu_flags="avx2 fma avx512f avx512_bf16"))[0]


def test_no_warning_for_a_replicate_seed_or_the_host_built_base():
    """A CUDA run's replicates (own draw seeds, the run's seed as config_seed) and its base model built on
    the host gave "records differ in `device`" and "in `seed`" on one run's records (SmolLM2 on an H100)."""
    records = _records(device="cuda", gpu="H100")
    records[0]["stage"] = "build_model"
    replicate = {"stage": "quantize", "params": {"config_seed": 1, "seed": 2112488722},
                 "provenance": {**records[1]["provenance"], "seed": 2112488722}}
    assert markdown.provenance_warnings(records + [replicate]) == []
    # a record of another run's seed still warns, replicate or not
    other = {"stage": "quantize", "params": {"config_seed": 7, "seed": 99},
             "provenance": {**records[1]["provenance"], "seed": 99}}
    assert "`seed`" in markdown.provenance_warnings(records + [other])[0]
    # and a model job on another device does
    records[0]["stage"] = "evaluate"
    assert "`device`" in markdown.provenance_warnings(records)[0]


def test_warning_lists_whole_values_and_counts_what_it_lists():
    """The SmolLM2 report cut library versions mid-word and said "6 values" beside 4 commits."""
    libs = [{"torch": "2.11.0", "transformers": "5.23.0", "gptqmodel": "7.6.0"},
            {"torch": "2.13.0+cpu", "transformers": "5.23.0", "gptqmodel": "7.6.0"}]
    records = [{"provenance": {"git_commit": f"{i:040x}", "libraries": libs[i % 2]}} for i in range(8)]
    commits, libraries = markdown.provenance_warnings(records)
    assert commits == ("records differ in `git_commit` (8 values: " + "; ".join(f"{i:040x}" for i in range(6))
                       + "; and 2 more)")
    assert libraries == "records differ in `libraries` (2 combinations; torch 2.11.0 / 2.13.0+cpu)"


def _inputs(records, skipped):
    from quantbench.report.figures import Inputs

    empty = pd.DataFrame()
    params = {"title": "toy", "skipped": skipped, "recipes": [], "generate": {"new_tokens": [8]}}
    # records of a stage that names no variant (what the warning reads is their provenance)
    return Inputs([{**r, "stage": "build_model", "subject": "base"} for r in records], empty, empty, empty, empty,
                  params)


def test_report_shows_the_warning_and_skipped_methods():
    skipped = {"gptq-marlin": "GPTQ kernel 'marlin' runs on CUDA only"}
    text = markdown.render(_inputs(_records(git_commit="other"), skipped), pd.DataFrame(), [])
    assert "**Warning: mixed provenance.**" in text and "`git_commit`" in text
    assert "## Skipped methods" in text and "| gptq-marlin | GPTQ kernel 'marlin' runs on CUDA only |" in text
    assert "mixed provenance" not in markdown.render(_inputs(_records(), {}), pd.DataFrame(), [])


def test_dirty_means_code_not_config(tmp_path):
    """Editing a config (recorded by hash) leaves the commit clean; editing library code marks it dirty."""
    import shutil
    import subprocess

    from tests.conftest import copy_project

    work = copy_project(tmp_path / "proj")
    run = lambda *a: subprocess.run(["git", *a], cwd=work, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    run("-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    probe = ("import sys; sys.path.insert(0, '.'); from quantbench.provenance import git_commit; print(git_commit())")
    head = lambda: subprocess.run([sys.executable, "-c", probe], cwd=work, env={**os.environ, "QB_GIT_COMMIT": ""},  # noqa: E731
                                  capture_output=True, text=True, check=True).stdout.strip()
    assert not head().endswith("+dirty")
    with open(work / "config/config.yaml", "a") as f:
        f.write("\n# a comment\n")
    assert not head().endswith("+dirty")
    with open(work / "quantbench/timing.py", "a") as f:
        f.write("\n# a comment\n")
    assert head().endswith("+dirty")
    shutil.rmtree(work)
