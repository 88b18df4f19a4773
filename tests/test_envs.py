"""The per-backend conda envs parse, pin exactly the versions requirements.txt pins, and carry what
their jobs import."""
import re

import pytest
import yaml

from tests.conftest import ROOT

ENVS = {"bnb": {"torch", "transformers", "bitsandbytes", "peft"},
        "gptq": {"torch", "transformers", "gptqmodel", "optimum", "peft"},
        "torchao": {"torch", "transformers", "torchao", "peft"},
        "hqq": {"torch", "transformers", "hqq", "peft"},
        "gguf": {"torch", "transformers", "llama-cpp-python", "gguf", "lm-eval"},
        "exl3": {"torch", "transformers", "exllamav3", "lm-eval"},
        "eval": {"lm-eval", "gptqmodel", "bitsandbytes", "torchao", "hqq", "datasets"},
        "report": {"pandas", "matplotlib"},
        "vllm": {"vllm", "transformers"}}


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
        if m:
            out[m[1].lower()] = m[2]
    return out


REQUIRED = pins((ROOT / "requirements.txt").read_text().splitlines()
               + (ROOT / "requirements-llamacpp.txt").read_text().splitlines()
               + (ROOT / "requirements-exl3.txt").read_text().splitlines()
               + (ROOT / "requirements-vllm.txt").read_text().splitlines())


def post_deploy_pins(name: str) -> dict[str, str]:
    """What an env's post-deploy script (run by Snakemake inside the new env) installs: packages that
    need build settings an env file cannot carry (hqq's DISABLE_CUDA, llama.cpp's CMake flags)."""
    script = ROOT / "envs" / f"{name}.post-deploy.sh"
    if not script.exists():
        return {}
    text = script.read_text()
    found = {m[1].lower(): m[2] for m in re.finditer(r'"([A-Za-z0-9_.\-]+)==([^"\s]+)"', text)}
    if m := re.search(r"^VERSION=(\S+)$", text, re.M):  # the sdist build names its version once
        found["llama-cpp-python"] = m[1]
    return found


@pytest.mark.parametrize("name", sorted(ENVS))
def test_env_parses_and_agrees_with_requirements(name):
    env = yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    pinned = {**pins(pip), **post_deploy_pins(name)}
    assert ENVS[name] <= set(pinned), f"{name} lacks {ENVS[name] - set(pinned)}"
    for package, version in pinned.items():
        assert REQUIRED.get(package) == version, (f"{name}: {package}=={version}, "
                                                  f"requirements.txt {REQUIRED.get(package)}")


def test_rules_name_only_existing_envs():
    text = "\n".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    named = set(re.findall(r'conda_env\("(\w+)"\)', text))
    assert named and named <= set(ENVS)
    assert {p.stem for p in (ROOT / "envs").glob("*.yaml")} == set(ENVS)


def test_every_backend_runs_in_an_existing_env():
    """Each backend names the env its jobs run in and the one that scores it (Backend.ENV, EVALUATE_ENV)."""
    from quantbench.backends import BACKENDS, get

    for backend in BACKENDS:
        for env in (get(backend).env, get(backend).EVALUATE_ENV):
            assert env in ENVS, f"backend {backend!r} names env {env!r}; add envs/{env}.yaml or share one"
    assert get("awq").env == "gptq" and "gptqmodel" in ENVS["gptq"]  # AWQ runs on GPTQModel
    assert "lm-eval" in ENVS[get("gguf").EVALUATE_ENV]  # llama.cpp scores the file through lm-eval
    assert "lm-eval" in ENVS[get("exl3").EVALUATE_ENV]  # lm-eval scores EXL3 where exllamav3 is installed


@pytest.mark.parametrize("name", sorted(ENVS))
def test_env_needs_no_hand_set_variables(name):
    """`--software-deployment-method conda` creates envs unattended: build settings live in the
    env's own post-deploy script, never in a variable its comments ask the user to export."""
    text = (ROOT / "envs" / f"{name}.yaml").read_text()
    assert not re.search(r"\b(export|CMAKE_ARGS|DISABLE_CUDA=)", text), f"envs/{name}.yaml asks for a hand step"
    script = ROOT / "envs" / f"{name}.post-deploy.sh"
    if script.exists():
        assert script.read_text().startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in script.read_text()


@pytest.mark.conda
@pytest.mark.parametrize("name", sorted(ENVS))
def test_env_builds_unattended_with_conda(name, tmp_path):
    """Creates the env with mamba/conda and runs its post-deploy script as Snakemake would. Needs conda
    and its channels (conda-forge), which CI's machine cannot reach: run `pytest -m conda` where they are."""
    import shutil
    import subprocess

    tool = shutil.which("mamba") or shutil.which("conda")
    if tool is None:
        pytest.fail("no conda or mamba on PATH: run this test where conda-forge is reachable")
    prefix = tmp_path / name
    subprocess.run([tool, "env", "create", "-q", "-p", str(prefix), "-f", str(ROOT / "envs" / f"{name}.yaml")],
                   check=True, timeout=3600)
    script = ROOT / "envs" / f"{name}.post-deploy.sh"
    if script.exists():
        subprocess.run([tool, "run", "-p", str(prefix), "bash", str(script)], check=True, timeout=3600)
    # exl3: importlib finds exllamav3 without importing it (the import compiles its CUDA extension)
    imports = {"bnb": "bitsandbytes", "gptq": "gptqmodel", "torchao": "torchao", "hqq": "hqq", "gguf": "llama_cpp",
               "eval": "lm_eval", "report": "matplotlib",
               "exl3": "importlib.util; assert importlib.util.find_spec('exllamav3')"}[name]
    subprocess.run([tool, "run", "-p", str(prefix), "python", "-c", f"import {imports}"], check=True, timeout=600)
