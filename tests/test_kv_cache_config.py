"""The kv_cache section's config errors: one line each, naming the key, the value and what is allowed,
before any job (unit level on quantbench.kv_config, and once through real Snakemake)."""
from __future__ import annotations

import copy

import pytest
import yaml

from quantbench import config_messages, kv_config, validation
from tests.conftest import ROOT, copy_project, snakemake

DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())
KV = {"caches": {"kv-hqq4": {"backend": "hqq", "bits": 4}, "kv-fp8": {"backend": "fp8"},
                 "kv-q8_0": {"backend": "llamacpp", "type_k": "q8_0", "type_v": "q8_0"}},
      "apply": {"fp32": ["kv-hqq4", "kv-fp8"], "bnb-nf4": ["kv-hqq4"]},
      "contexts": [64, 256], "windows": [2, 1]}
TOY_CONTEXT = DEFAULT["model"]["toy"]["max_position_embeddings"]


def problems(mutate) -> list[str]:
    config = copy.deepcopy(DEFAULT)
    config["kv_cache"] = copy.deepcopy(KV)
    mutate(config["kv_cache"])
    exp = validation.build(config, cuda_available=False)
    try:
        kv_config.check(config, exp.methods, str(ROOT), None)
    except config_messages.ConfigError as err:
        return err.errors
    return []


def test_the_sample_section_is_sound():
    assert problems(lambda kv: None) == []


@pytest.mark.parametrize("mutate, expected", [
    (lambda kv: kv["caches"].update({"kv-x": {"backend": "kivi"}}),
     "kv_cache.caches.kv-x.backend: 'kivi' is not a KV-cache backend; allowed: hqq, fp8, llamacpp"),
    (lambda kv: kv["caches"].update({"kv-x": {"backend": "quanto", "bits": 4}}),
     "kv_cache.caches.kv-x.backend: 'quanto' needs optimum-quanto, which requirements.txt does not install; "
     "allowed: hqq, fp8, llamacpp"),
    (lambda kv: kv["caches"]["kv-hqq4"].update(bits=5),
     "kv_cache.caches.kv-hqq4.bits: 5 is not supported by backend 'hqq'; allowed: 1, 2, 3, 4, 8"),
    (lambda kv: kv["caches"]["kv-fp8"].update(bits=4),
     "kv_cache.caches.kv-fp8.bits: not a parameter of backend 'fp8'; allowed: no other keys"),
    (lambda kv: kv["caches"]["kv-q8_0"].update(type_v="q3_k"),
     "kv_cache.caches.kv-q8_0.type_v: 'q3_k' is not supported by backend 'llamacpp'; allowed: f32, f16, bf16, "
     "q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1"),
    (lambda kv: kv["apply"].update({"bnb-nf4": ["kv-q8_0"]}),
     "kv_cache.apply.bnb-nf4: cache 'kv-q8_0' (backend llamacpp) does not run in transformers, which serves "
     "'bnb-nf4' (backend bnb); allowed: kv-hqq4, kv-fp8"),
    (lambda kv: kv["apply"].update({"bnb-nf5": ["kv-hqq4"]}),
     "kv_cache.apply.bnb-nf5: not a method of this config; allowed: "),
    (lambda kv: kv["apply"].update({"fp32": ["kv-hqq3"]}),
     "kv_cache.apply.fp32: cache 'kv-hqq3' is not under kv_cache.caches; allowed: kv-hqq4, kv-fp8, kv-q8_0"),
    (lambda kv: kv.update(contexts=[64, 2 * TOY_CONTEXT]),
     f"kv_cache.contexts: {2 * TOY_CONTEXT} is longer than the model's context ({TOY_CONTEXT} tokens, "
     f"max_position_embeddings from model.toy); allowed: at most {TOY_CONTEXT}"),
    (lambda kv: kv.update(windows=[2]),
     "kv_cache.windows: [2] names 1 counts for 2 contexts; allowed: one window count per entry of kv_cache.contexts"),
])
def test_each_problem_is_one_line_naming_key_value_and_allowed(mutate, expected):
    found = problems(mutate)
    assert len(found) == 1 and "\n" not in found[0], found
    assert found[0].startswith(expected), found[0]


def test_a_transformers_cache_on_a_gguf_method_is_refused():
    from quantbench.experiment import Method

    methods = {"fp32": Method("fp32", "none", {"dtype": "float32"}), "gguf-q8_0": Method("gguf-q8_0", "gguf", {})}
    config = {"baseline": "fp32", "kv_cache": {**KV, "apply": {"gguf-q8_0": ["kv-hqq4"]}}}
    assert kv_config.errors(config, methods, 8192) == [
        "kv_cache.apply.gguf-q8_0: cache 'kv-hqq4' (backend hqq) does not run in llama.cpp, which serves "
        "'gguf-q8_0' (backend gguf); allowed: kv-q8_0"]


def test_snakemake_stops_before_any_job_and_plans_the_kv_jobs(tmp_path):
    work = copy_project(tmp_path)
    overlay = work / "kv.yaml"
    overlay.write_text(yaml.safe_dump({"kv_cache": {**KV, "contexts": [64, 4096]}}))
    bad = snakemake(work, "-n", "--configfiles", "config/config.yaml", str(overlay), check=False)
    assert bad.returncode != 0
    expected = f"kv_cache.contexts: 4096 is longer than the model's context ({TOY_CONTEXT} tokens"
    assert expected in bad.stdout + bad.stderr
    overlay.write_text(yaml.safe_dump({"kv_cache": KV}))
    plan = snakemake(work, "-n", "--configfiles", "config/config.yaml", str(overlay))
    for row in ("fp32.json", "fp32@kv-hqq4.json", "fp32@kv-fp8.json", "bnb-nf4.json", "bnb-nf4@kv-hqq4.json"):
        assert f"records/kv/{row}" in plan.stdout
    assert "kv/reference.pt" in plan.stdout and "report/kv_cache.md" in plan.stdout
