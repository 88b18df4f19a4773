"""A LlamaCppEngine in a child process that never imports torch, driven over a socket pair.

Why: the CUDA builds of llama.cpp made on GPU nodes died with SIGSEGV while loading a model in a process
that had imported PyTorch's CUDA build (import order either way, with or without layers offloaded), and in
one that had imported numpy before llama.cpp's libraries (quantbench/llamacpp_engine.py says where this was
measured). The stages themselves need torch, so a GGUF model offloaded to the GPU runs its llama.cpp calls
here, in a process started by quantbench/llamacpp_worker_main.py, which loads llama.cpp before numpy.

    engine = WorkerEngine(gguf_file, n_threads, n_ctx, n_gpu_layers, **llama_args)
    engine.logits(tokens, keep_last)      # any LlamaCppEngine method: arguments and results pickled

Each call is one round trip: a timed call (a benchmark's generate) includes one, whose cost is measured
when the worker starts (`roundtrip_ms` in info(): a call that sends and returns a logits row's bytes).
The worker writes llama.cpp's log to the job's stderr, as the in-process engine does.
"""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
import traceback
import weakref
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

# exceptions that cross the boundary as themselves (the stages catch these); any other is a RuntimeError
PASSED = {"ValueError": ValueError, "RuntimeError": RuntimeError, "MemoryError": MemoryError}
ROUNDTRIPS = 5  # echoes of one logits row when the worker starts; their median is recorded
STOP_TIMEOUT_S = 30  # freeing a model and its contexts takes well under a second


class WorkerDied(RuntimeError):
    pass


def _exit_reason(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit {returncode}"


class WorkerEngine:
    """The same methods as LlamaCppEngine, run in the worker."""

    def __init__(self, gguf_file: str, n_threads: int, n_ctx: int, n_gpu_layers: int = 0, **llama_args):
        here, there = Pipe(duplex=True)
        root = str(Path(__file__).resolve().parents[1])  # the folder that holds quantbench
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        self._proc = subprocess.Popen([sys.executable, "-m", "quantbench.llamacpp_worker_main", str(there.fileno())],
                                      pass_fds=(there.fileno(),), env=env, stdin=subprocess.DEVNULL)
        there.close()
        self._conn: Connection | None = here
        # the worker goes when this object does, or at the latest when the interpreter exits
        self._finalizer = weakref.finalize(self, _stop, self._proc, here)
        try:
            sizes = self._call("__init__", gguf_file, n_threads, n_ctx, n_gpu_layers, **llama_args)
        except BaseException:
            self.close()
            raise
        self.n_ctx, self.n_vocab = sizes["n_ctx"], sizes["n_vocab"]
        row = np.zeros(self.n_vocab, np.float32)
        times = []
        for _ in range(ROUNDTRIPS):
            t0 = time.perf_counter()
            self._call("echo", row)
            times.append(1e3 * (time.perf_counter() - t0))
        self.roundtrip_ms = statistics.median(times)

    def _call(self, method: str, *args, **kwargs):
        if self._conn is None:
            raise RuntimeError("llama.cpp's worker process was closed")
        try:
            self._conn.send((method, args, kwargs))
            status, value = self._conn.recv()
        except (EOFError, OSError) as err:
            try:
                rc = self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                rc = None
            self.close()
            raise WorkerDied(f"llama.cpp's worker process ended during {method} ({_exit_reason(rc)}); "
                             f"llama.cpp's log above in this job's log says how far it got") from err
        if status == "ok":
            return value
        kind, message, trace = value
        raise PASSED.get(kind, RuntimeError)(message if kind in PASSED else f"{kind}: {message}\n{trace}")

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, *args, **kwargs)

    def info(self) -> dict:
        return {**self._call("info"), "worker_roundtrip_ms": round(self.roundtrip_ms, 4)}

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._finalizer.detach()
            _stop(self._proc, conn)


def _stop(proc: subprocess.Popen, conn: Connection) -> None:
    try:
        conn.send(("close", (), {}))
        if conn.poll(STOP_TIMEOUT_S):  # a worker stuck in a call is killed below, not waited for forever
            conn.recv()
    except (EOFError, OSError):
        pass
    conn.close()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def serve(conn: Connection) -> None:
    """The worker's loop: build the engine on the first call, answer calls until `close`."""
    from quantbench.llamacpp_engine import LlamaCppEngine

    engine = None
    while True:
        try:
            method, args, kwargs = conn.recv()
        except EOFError:  # the job went without closing
            break
        try:
            if method == "__init__":
                engine = LlamaCppEngine(*args, **kwargs)
                result = engine.sizes()
            elif method == "echo":
                result = args[0]
            elif method == "close":
                if engine is not None:
                    engine.close()
                conn.send(("ok", None))
                break
            elif method == "torch_imported":  # the reason this process exists, checked by the tests
                result = "torch" in sys.modules
            elif method == "libraries_before_numpy":  # llamacpp_worker_main.py says why; the tests check it
                loaded = list(sys.modules)  # in import order: a module enters before its body runs
                result = loaded.index("llama_cpp.llama_cpp") < loaded.index("numpy")
            else:
                result = getattr(engine, method)(*args, **kwargs)
            conn.send(("ok", result))
        except Exception as err:  # noqa: BLE001 - every failure goes back to the job, which raises it
            conn.send(("error", (type(err).__name__, str(err), traceback.format_exc())))
    conn.close()

