"""The backend registry is the one place that knows a backend: each fact about it is an attribute of
its class (quantbench.backends.base.Backend), no caller decides one by the backend's name, and a
backend registered from outside the package is planned by the workflow with nothing else changed."""
from __future__ import annotations

import ast
import copy
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from quantbench import backends, resources, validation
from quantbench.backends.base import REGISTRY, Backend
from tests.conftest import ROOT, copy_project

# Every per-backend fact the workflow, the checks and the report read, with the registry's values
# for this package's backends: a new backend states each one in its module (or takes the default).
FACTS = {
    "RUNTIME": {"none": "torch", "bnb": "torch", "gptq": "torch", "torchao": "torch", "hqq": "torch", "awq": "torch",
                "gguf": "llama.cpp", "exl3": "torch"},
    "LABEL": {"none": "unquantized", "bnb": "bitsandbytes", "gptq": "GPTQ", "torchao": "torchao", "hqq": "HQQ",
              "awq": "AWQ", "gguf": "GGUF", "exl3": "EXL3"},
    "ENV": {"none": "bnb", "awq": "gptq"},  # the others run in an env of their own name
    "EVALUATE_ENV": {"gguf": "gguf", "exl3": "exl3"},  # the others are scored in envs/eval.yaml
    "REQUANTIZE_TARGET": ["gptq", "torchao", "gguf"],
    "SENSITIVITY": ["bnb", "gptq", "torchao", "hqq", "awq"],
    "GPTQMODEL_LAYERS": ["gptq", "awq"],
    "CALIBRATED": ["gptq", "awq"],
    "HOST_CPU_LANE": ["gguf"],
    "can_dequantize": ["bnb", "torchao", "hqq", "awq"],
    "encodes": ["none", "bnb", "gptq"],
    "QUANTIZE_MINUTES": {"none": (10, 3), "bnb": (10, 3), "gptq": (20, 20), "torchao": (10, 5), "hqq": (10, 5),
                         "awq": (20, 30), "gguf": (15, 10), "exl3": (60, 15)},
    "ENGINES": {"none": ["vllm"], "bnb": ["vllm"], "gptq": ["vllm"], "torchao": [], "hqq": [], "awq": ["vllm"],
                "gguf": ["llamacpp"], "exl3": []},
    # COLOR and MARKER: distinct per backend (test_report_styles_are_distinct)
}


def test_every_fact_is_read_from_the_backend_class():
    for fact, expected in FACTS.items():
        if isinstance(expected, list):
            assert backends.having(fact) == expected, fact
        elif fact == "ENV":
            assert {b: backends.get(b).env for b in backends.BACKENDS} == \
                {b: expected.get(b, b) for b in backends.BACKENDS}
        elif fact == "EVALUATE_ENV":
            assert {b: backends.get(b).EVALUATE_ENV for b in backends.BACKENDS} == \
                {b: expected.get(b, "eval") for b in backends.BACKENDS}
        elif fact == "ENGINES":
            assert {b: sorted(backends.get(b).ENGINES) for b in backends.BACKENDS} == expected
        elif fact == "LABEL":
            assert {b: backends.get(b).label for b in backends.BACKENDS} == expected
        else:
            assert {b: getattr(backends.get(b), fact) for b in backends.BACKENDS} == expected, fact
    # what the callers derive from them
    assert {b: resources._quantize_minutes(b) for b in backends.BACKENDS} == FACTS["QUANTIZE_MINUTES"]


def test_report_styles_are_distinct_and_come_from_the_classes():
    from quantbench.report import style

    looks = {b: (backends.get(b).COLOR, backends.get(b).MARKER) for b in backends.BACKENDS}
    assert len(set(looks.values())) == len(looks)
    assert len({c for c, _ in looks.values()}) == len(looks) and len({m for _, m in looks.values()}) == len(looks)
    for b, (color, marker) in looks.items():
        family = "fp" if b == backends.UNQUANTIZED else b
        assert style.FAMILIES[family] == (color, marker, backends.get(b).label)


# Where a caller may still name a backend: what it names is the backend's own subject, not a fact
# the registry keeps. {file: {backend names, why}}
NAMED_ON_PURPOSE = {
    # the comparison's two claims are about bitsandbytes and GPTQ by name
    "quantbench/encoder/claims.py": {"bnb", "gptq"},
    # the table sets GPTQ's mixed-precision methods beside llama.cpp's K-quant mixes
    "quantbench/report/sensitivity_tables.py": {"gptq", "gguf"},
    # the libraries whose versions a record keeps (package names that a backend shares)
    "quantbench/provenance.py": {"torchao", "hqq"},
    # the KV cache's own backends (transformers' QuantizedCache "hqq"), not a quantization backend
    "quantbench/kv_cache.py": {"hqq"},
    "quantbench/kv_config.py": {"hqq"},
}


def _tracked(*patterns: str) -> list[Path]:
    """The committed files matching the patterns (work in progress is not judged yet), or every
    file matching them where the tree is not a git checkout."""
    if not (ROOT / ".git").exists():
        return sorted({p for pattern in patterns for p in ROOT.glob(pattern.replace("/*.", "/**/*."))})
    out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.split()]


def _mentions_backend(node: ast.AST) -> bool:
    return "backend" in ast.unparse(node).lower()


def _named_in_python(path: Path, names: set[str]) -> set[str]:
    """Backend names a file decides something by: compared with an expression about a backend
    (`m.backend == "gptq"`, `backend in ("gptq", "awq")`), or two or more of them in one literal
    collection or dict (a list kept outside the registry)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            for side in sides:
                consts = [side] if isinstance(side, ast.Constant) else list(getattr(side, "elts", []))
                named = {c.value for c in consts if isinstance(c, ast.Constant) and c.value in names}
                if named and any(_mentions_backend(s) for s in sides if s is not side):
                    found |= named
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
            elts = node.keys if isinstance(node, ast.Dict) else node.elts
            named = {e.value for e in elts if isinstance(e, ast.Constant) and e.value in names - {"none"}}
            if len(named) >= 2:
                found |= named
    return found


def test_no_caller_decides_a_backend_fact_by_its_name():
    names = set(backends.BACKENDS)
    found = {}
    for path in _tracked("quantbench/*.py", "workflow/scripts/*.py", "tools/*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("quantbench/backends/") or not path.is_file():
            continue
        named = _named_in_python(path, names) - NAMED_ON_PURPOSE.get(rel, set())
        if named:
            found[rel] = sorted(named)
    # rules: a backend name compared with anything about a backend, or a map keyed by backend names
    alternation = "|".join(sorted(names))
    smk = re.compile(rf'backend\w*(\(\w*\))?\s*[!=]=\s*"({alternation})"|"({alternation})"\s*[!=]=\s*\w*backend'
                     rf'|\{{\s*"({alternation})"\s*:')
    for path in _tracked("workflow/rules/*.smk", "Snakefile"):
        hits = smk.findall(path.read_text(encoding="utf-8"))
        if hits:
            found[path.relative_to(ROOT).as_posix()] = sorted({n for h in hits for n in h[1:] if n})
    assert not found, f"backend facts decided by name outside quantbench/backends (make them Backend attributes): " \
                      f"{found}"


def test_the_name_scan_catches_a_kept_list():
    """The scan above can fail: the lists this registry replaced are what it finds."""
    names = set(backends.BACKENDS)
    sample = textwrap.dedent('''
        REQUANTIZE_BACKENDS = ("gptq", "gguf", "torchao")
        def f(m, source):
            if m.backend == "gptq":
                pass
            if source == "gguf":  # a model source, not a backend
                pass
    ''')
    path = ROOT / "tests" / ".scan_sample.py"
    try:
        path.write_text(sample)
        assert _named_in_python(path, names) == {"gptq", "gguf", "torchao"}
    finally:
        path.unlink()


# A backend outside this package: the fp model copied under another name. What the workflow needs
# of it is its class; nothing else in the project names it.
PLUGIN = '''
from pathlib import Path

from quantbench.backends.base import Backend, register


@register("fp-copy")
class FpCopy(Backend):
    SPEC = {"dtype": ["float32"]}
    DEFAULTS = {"dtype": "float32"}
    ENV = "bnb"
    COLOR, MARKER, LABEL = "#010203", "8", "fp copy"
    REQUANTIZE_TARGET = True
    SENSITIVITY = True

    def describe(self, params):
        return "a copy of the fp model"

    def needs_cuda(self, params):
        return None

    def bits_per_weight(self, params):
        return 32.0

    def quantize(self, src, dst, params, ctx):
        from quantbench.backends import get

        return get("none").quantize(src, dst, params, ctx)

    def load(self, path, params, ctx):
        from quantbench.backends import get

        return get("none").load(path, params, ctx)
'''


@pytest.fixture
def fp_copy(tmp_path):
    """The plugin registered in this process for the test, and the folder its module is in."""
    (tmp_path / "fp_copy_backend.py").write_text(PLUGIN)
    sys.path.insert(0, str(tmp_path))
    try:
        import fp_copy_backend  # noqa: F401

        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("fp_copy_backend", None)
        REGISTRY.pop("fp-copy", None)


def _config() -> dict:
    config = copy.deepcopy(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    config["methods"]["fp-copy"] = {"backend": "fp-copy", "dtype": "float32"}
    config["recipes"] = [{**config["recipes"][0], "requantize": "fp-copy"}] if config.get("recipes") else []
    config["sensitivity"]["methods"] = [*config["sensitivity"]["methods"], "fp-copy"]
    return config


def test_a_registered_backend_is_planned_with_nothing_else_changed(fp_copy, tmp_path):
    assert isinstance(backends.get("fp-copy"), Backend) and "fp-copy" in backends.names()
    config = _config()
    exp = validation.load(config, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    assert exp.methods["fp-copy"].backend == "fp-copy" and "fp-copy" in exp.runnable
    names = {v.name for v in exp.variants}
    assert "fp-copy" in names
    assert any(n.endswith("+fp-copy") for n in names)  # a recipe re-quantizes to it
    assert resources._quantize_minutes("fp-copy") == Backend.QUANTIZE_MINUTES
    # without the registration the same config stops, naming the key and what is allowed
    REGISTRY.pop("fp-copy")
    with pytest.raises(validation.ConfigError, match=r"methods\.fp-copy\.backend: 'fp-copy' is not a backend; allowed"):
        validation.load(config, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))


def test_snakemake_plans_the_registered_backends_jobs(fp_copy, tmp_path):
    """The dry run, in a process that imports the plugin before Snakemake reads the Snakefile: the
    schema, the rules and the report accept the new backend as they are."""
    work = copy_project(tmp_path / "project")
    (work / "plugin.yaml").write_text(yaml.safe_dump(_config(), sort_keys=False))
    run = (f"import sys; sys.path.insert(0, {str(fp_copy)!r}); import fp_copy_backend; "
           "from snakemake.cli import main; sys.argv = ['snakemake'] + sys.argv[1:]; main()")
    proc = subprocess.run([sys.executable, "-c", run, "-n", "--cores", "1", "--configfile", "plugin.yaml"],
                          cwd=work, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert re.search(r"models/fp-copy\b", out), out[-3000:]
    assert re.search(r"evaluate/fp-copy\.json", out), out[-3000:]


# What a loaded model offers (quantbench.loaded_model.LoadedModel): no stage asks the model for it.
CONTRACT = {"runtime", "max_batch_size", "batch_reason", "file_weights_mb", "decode_weights_mb", "body_mb",
            "embedding_head_mb", "kernel"}


def test_no_stage_probes_a_model_for_what_the_loaded_model_says():
    found = []
    for path in _tracked("quantbench/*.py", "workflow/scripts/*.py"):
        if not path.is_file():
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr") \
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                    and node.args[1].value in CONTRACT:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"probes for LoadedModel's fields (read them from the LoadedModel instead): {found}"


def test_a_torch_model_loads_with_its_contract(tiny_model):
    from quantbench import benchmark, memory
    from quantbench.loading import load
    from quantbench.modelio import RunContext

    loaded, _, info = load(str(tiny_model), RunContext(device="cpu", dtype_name="float32"))
    assert (loaded.runtime, loaded.batch_limit, loaded.file_weights) == ("torch", None, None)
    assert info == {"backend": "none", "method": "base", "kernel": loaded.kernel, **loaded.details}
    weights = benchmark.weights_mb(loaded)
    assert weights.weights_mb == memory.model_weights_mb(loaded.model) == weights.body_mb + weights.embedding_head_mb
    assert weights.decode_mb == benchmark.decode_weights_mb(loaded.model)
