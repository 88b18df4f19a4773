"""tools/gpu/llamacpp_wait.py: the stand-in for llama_cpp that lets a GPU node's DAG start while llama.cpp's
CUDA build runs (tools/gpu/dag_run.sh). Each case imports it in a fresh Python, as a job would."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import ROOT


def _stand_in(tmp_path: Path) -> Path:
    folder = tmp_path / "wait"
    (folder / "llama_cpp").mkdir(parents=True)
    shutil.copy(ROOT / "tools" / "gpu" / "llamacpp_wait.py", folder / "llama_cpp" / "__init__.py")
    return folder


def _python(code: str, path: list[Path], ready: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "QB_LLAMACPP_READY": str(ready),
           "PYTHONPATH": os.pathsep.join([*map(str, path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)


def _fake_build(folder: Path) -> None:
    """A package named llama_cpp that records whether numpy came before it (the worker's rule)."""
    (folder / "llama_cpp").mkdir(parents=True)
    (folder / "llama_cpp" / "__init__.py").write_text(
        "import sys\nNUMPY_FIRST = 'numpy' in sys.modules\nBUILT = True\n")
    (folder / "llama_cpp" / "sub.py").write_text("VALUE = 7\n")


def test_a_job_waits_for_the_build_then_gets_the_real_package_from_a_folder_made_after_it_started(tmp_path):
    """The build's folder does not exist when the job starts (Python then remembers it as empty), and the job
    has imported other modules meanwhile: once the ready file appears, it gets the build's package, its
    submodules too, and llama.cpp still comes before numpy."""
    build, ready = tmp_path / "build", tmp_path / "ready"

    def finish_build():
        time.sleep(3)
        _fake_build(build)
        ready.touch()

    threading.Thread(target=finish_build).start()
    code = ("import json, email.utils, time\nt0 = time.monotonic()\nimport llama_cpp\n"
            "from llama_cpp import BUILT\nimport llama_cpp.sub as sub\nimport sys\n"
            "print(llama_cpp.__file__, BUILT, sub.VALUE, llama_cpp.NUMPY_FIRST, sys.modules['llama_cpp'] is llama_cpp,"
            " round(time.monotonic() - t0))")
    proc = _python(code, [_stand_in(tmp_path), build], ready)
    assert proc.returncode == 0, proc.stderr
    where, built, value, numpy_first, same, waited = proc.stdout.split()
    assert where == str(build / "llama_cpp" / "__init__.py")
    assert (built, value, numpy_first, same) == ("True", "7", "False", "True")
    assert int(waited) >= 2
    assert "waited" in proc.stderr and "CUDA build" in proc.stderr


def test_the_real_llama_cpp_is_handed_over_once_ready(tmp_path):
    """With the ready file there, the import is the installed llama-cpp-python itself, working."""
    ready = tmp_path / "ready"
    ready.touch()
    proc = _python("import llama_cpp, sys; print(llama_cpp.__file__); print(llama_cpp.llama_supports_gpu_offload() in "
                   "(True, False)); print('llama_cpp' in sys.modules and sys.modules['llama_cpp'] is llama_cpp)",
                   [_stand_in(tmp_path)], ready)
    assert proc.returncode == 0, proc.stderr
    where, works, same = proc.stdout.split()
    assert "wait" not in Path(where).parts and Path(where).name == "__init__.py"
    assert (works, same) == ("True", "True")


def test_a_failed_build_fails_the_import_with_its_reason(tmp_path):
    ready = tmp_path / "ready"
    (tmp_path / "ready.failed").write_text("llama.cpp CUDA build failed (build-llamacpp-cuda.log)\n")
    proc = _python("import llama_cpp", [_stand_in(tmp_path)], ready)
    assert proc.returncode != 0
    assert "ImportError: llama_cpp is not available: llama.cpp CUDA build failed (build-llamacpp-cuda.log)" \
        in proc.stderr


def test_snakemakes_planning_process_is_answered_without_waiting(tmp_path):
    """The process that plans the DAG (snakemake imported) asks whether llama.cpp can offload to a GPU and
    loads nothing: it gets the build's answer at once, with no ready file."""
    proc = _python("import sys, types, time; sys.modules['snakemake'] = types.ModuleType('snakemake')\n"
                   "t0 = time.monotonic()\nfrom quantbench.llamacpp_engine import gpu_offload_missing\n"
                   "print(gpu_offload_missing(), round(time.monotonic() - t0))",
                   [_stand_in(tmp_path), ROOT], tmp_path / "never", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "None"
    assert int(proc.stdout.split()[1]) < 30
