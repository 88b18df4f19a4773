"""Stands in for the `llama_cpp` package while llama.cpp's CUDA build runs beside a DAG that has already
started (tools/gpu/dag_run.sh copies this file to a folder of its own as llama_cpp/__init__.py, ahead of
the build's folder on PYTHONPATH). Importing it waits until the file QB_LLAMACPP_READY exists (the build
ended and passed its worker check), then imports the real package and hands it over in its place; if
QB_LLAMACPP_READY.failed appears instead, the import fails with the reason it holds.

Only os, sys, time and importlib are imported before the real package: a process that imports llama_cpp
first (the worker, quantbench/llamacpp_worker_main.py) still loads llama.cpp's libraries before numpy.

Snakemake's own process is the exception: it plans the DAG, asking only whether llama.cpp is installed and
can put layers on a GPU (quantbench/validation.py), and loads no model. It gets the answer of the build
under way, a CUDA build, at once; should the build or its check fail, the GGUF jobs fail with the reason.
"""
import importlib
import os
import sys
import time

_ready = os.environ["QB_LLAMACPP_READY"]
if "snakemake" in sys.modules:
    __version__ = f"CUDA build under way ({_ready})"

    def llama_supports_gpu_offload() -> bool:
        return True
else:
    _waited = time.monotonic()
    while not os.path.exists(_ready):
        if os.path.exists(_ready + ".failed"):
            with open(_ready + ".failed") as f:
                raise ImportError(f"llama_cpp is not available: {f.read().strip()}")
        time.sleep(2)
    if time.monotonic() - _waited > 1:
        print(f"llama_cpp: waited {time.monotonic() - _waited:.0f} s for llama.cpp's CUDA build",
              file=sys.stderr, flush=True)

    _here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    # A folder on sys.path that did not exist yet when this process first searched it (the build's target)
    # is remembered as holding nothing; invalidate_caches() forgets those (Python >= 3.10), so the search
    # below looks again.
    importlib.invalidate_caches()
    del sys.modules[__name__]
    # The import machinery returns what sys.modules holds under the name once this module has run: the real one.
    sys.modules[__name__] = importlib.import_module(__name__)
