"""The library files a workflow script runs, read from the import statements of the real tree."""
from quantbench import code_inputs
from tests.conftest import ROOT


def _rel(files) -> set[str]:
    return {str(f).removeprefix(f"{ROOT}/") for f in files}


def test_report_runs_the_report_package_and_no_backend():
    files = _rel(code_inputs.modules(str(ROOT / "workflow/scripts/report.py"), str(ROOT)))
    assert {"quantbench/report/tables.py", "quantbench/report/markdown.py", "quantbench/records.py"} <= files
    # the registry and the contract (backends/base.py) only: no backend module
    assert not any(f.startswith("quantbench/backends/") and not f.endswith(("__init__.py", "base.py"))
                   for f in files), files


def test_backends_named_at_run_time_are_added_with_what_they_import():
    script = str(ROOT / "workflow/scripts/quantize.py")
    plain = _rel(code_inputs.modules(script, str(ROOT)))
    with_gptq = _rel(code_inputs.modules(script, str(ROOT), ("gptq",)))
    assert "quantbench/backends/gptq.py" not in plain  # imported through importlib only
    assert with_gptq - plain >= {"quantbench/backends/gptq.py"}
    assert "quantbench/backends/bnb.py" not in with_gptq
