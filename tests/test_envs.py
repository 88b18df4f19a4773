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
        "eval": {"lm-eval", "gptqmodel", "bitsandbytes", "torchao", "hqq", "datasets"},
        "report": {"pandas", "matplotlib"}}


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", line)
        if m:
            out[m[1].lower()] = m[2]
    return out


REQUIRED = pins((ROOT / "requirements.txt").read_text().splitlines()
               + (ROOT / "requirements-llamacpp.txt").read_text().splitlines())


@pytest.mark.parametrize("name", sorted(ENVS))
def test_env_parses_and_agrees_with_requirements(name):
    env = yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    pinned = pins(pip)
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
    """Backends without an env of their own name the one they share (common.smk's SHARED_ENVS)."""
    import ast

    from quantbench.backends import BACKENDS

    text = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    shared = ast.literal_eval(re.search(r"^SHARED_ENVS = (\{.*?\})$", text, re.M)[1])
    for backend in BACKENDS:
        assert shared.get(backend, backend) in ENVS, (f"backend {backend!r} has no env; add envs/{backend}.yaml "
                                                      "or share one")
    assert shared["awq"] == "gptq" and "gptqmodel" in ENVS["gptq"]  # AWQ runs on GPTQModel
