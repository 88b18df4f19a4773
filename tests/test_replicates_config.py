"""`replicates: N` on a method: refused in one line where it cannot mean anything, and planned as exactly
N - 1 more quantize and evaluate jobs (no benchmark, fine-tune or recipe job) where it can."""
from __future__ import annotations

import copy
import re

import pytest
import yaml

from quantbench import calibration_draw, config_messages, validation
from quantbench.report.params import record_paths
from tests.conftest import ROOT, copy_project, snakemake

DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def _load(config: dict, tmp_path):
    return validation.load(config, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))


def _errors(config: dict, tmp_path) -> list[str]:
    with pytest.raises(config_messages.ConfigError) as info:
        _load(config, tmp_path)
    return info.value.errors


@pytest.mark.parametrize("method, value, expected", [
    ("bnb-nf4", 3, ["methods.bnb-nf4.replicates: 3", "backend 'bnb'", "allowed: 1, or more on a calibrated backend",
                    "gptq", "awq"]),
    ("gptq-4bit-g32", 0, ["methods.gptq-4bit-g32.replicates: 0", "allowed: an integer >= 1"]),
    ("gptq-4bit-g32", "3", ["methods.gptq-4bit-g32.replicates: '3'", "allowed: an integer >= 1"]),
    ("gptq-4bit-g32", True, ["methods.gptq-4bit-g32.replicates: True", "allowed: an integer >= 1"]),
])
def test_bad_replicates_give_one_line(method, value, expected, tmp_path):
    config = copy.deepcopy(DEFAULT)
    config["methods"][method]["replicates"] = value
    errors = _errors(config, tmp_path)
    assert len(errors) == 1, errors
    assert "\n" not in errors[0]
    for part in expected:
        assert part in errors[0], (part, errors[0])


def test_replicates_are_variants_of_their_own_but_not_parameters(tmp_path):
    config = copy.deepcopy(DEFAULT)
    config["methods"]["gptq-4bit-g32"]["replicates"] = 3
    exp = _load(config, tmp_path)
    plain = _load(copy.deepcopy(DEFAULT), tmp_path)
    # replicate 1 is the method itself: its parameters (hence its jobs' params) do not change
    assert exp.methods["gptq-4bit-g32"].params == plain.methods["gptq-4bit-g32"].params
    assert exp.replicas == {"gptq-4bit-g32~r2": ("gptq-4bit-g32", 2), "gptq-4bit-g32~r3": ("gptq-4bit-g32", 3)}
    assert exp.method("gptq-4bit-g32~r3") is exp.methods["gptq-4bit-g32"]
    assert [v.name for v in exp.variants] == [v.name for v in plain.variants]
    paths = set(record_paths(exp, "r")) - set(record_paths(plain, "r"))
    assert paths == {f"r/records/{stage}/gptq-4bit-g32~r{k}.json" for stage in ("quantize", "evaluate") for k in (2, 3)}


def test_a_method_name_cannot_look_like_a_replicate(tmp_path):
    config = copy.deepcopy(DEFAULT)
    config["methods"]["gptq~r2"] = config["methods"]["gptq-4bit-g32"]
    errors = _errors(config, tmp_path)
    assert len(errors) == 1 and errors[0].startswith("methods.gptq~r2:"), errors


def test_draws_follow_seed_and_replicate_alone():
    assert calibration_draw.draw_indices(256, 64, 1234, 1) == list(range(64))
    second = calibration_draw.draw_indices(256, 64, 1234, 2)
    assert second == calibration_draw.draw_indices(256, 64, 1234, 2)
    assert second != calibration_draw.draw_indices(256, 64, 1234, 3)
    assert second != calibration_draw.draw_indices(256, 64, 1235, 2)
    assert len(set(second)) == 64 and max(second) < 256 and set(second) != set(range(64))
    assert calibration_draw.draw_seed(1234, 1) == 1234
    assert calibration_draw.draw_seed(1234, 2) != calibration_draw.draw_seed(1234, 3)
    assert calibration_draw.split_name("gptq-4bit-g32~r12") == ("gptq-4bit-g32", 12)
    assert calibration_draw.split_name("gptq-4bit-g32") == ("gptq-4bit-g32", 1)


def _job_counts(out: str) -> dict[str, int]:
    stats = out[out.index("Job stats"):]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}


def test_dry_run_plans_exactly_the_extra_quantize_and_evaluate_jobs(tmp_path):
    work = copy_project(tmp_path / "project")
    config = copy.deepcopy(DEFAULT)
    (work / "plain.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    config["methods"]["gptq-4bit-g32"]["replicates"] = 3
    config["methods"]["gptq-mix34-kquant"]["replicates"] = 2
    (work / "replicated.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    plain = _job_counts(snakemake(work, "-n", "--configfile", "plain.yaml", timeout=300).stdout)
    out = snakemake(work, "-n", "--configfile", "replicated.yaml", timeout=300).stdout
    replicated = _job_counts(out)
    extra = {k: replicated[k] - plain.get(k, 0) for k in replicated if replicated[k] != plain.get(k, 0)}
    assert extra == {"quantize": 3, "evaluate": 3, "total": 6}, extra
    planned = set(re.findall(r"wildcards: (?:method|variant)=(\S+~r\d+)", out))
    assert planned == {"gptq-4bit-g32~r2", "gptq-4bit-g32~r3", "gptq-mix34-kquant~r2"}
