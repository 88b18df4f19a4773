"""Serving engines a benchmark can also measure a variant through (config `benchmark.engines`).

`builtin` is quantbench's own benchmark (records/benchmark/<variant>.json, its decoders); every other
engine loads the variant's folder itself and runs the cells of quantbench.engines.cells, one job per
engine and variant (records/engine/<engine>/<variant>.json), so that a report can set an engine's figure
beside the same scheme's on another engine. quantbench's decoders run those cells too, for every variant an
external engine runs (records/engine/builtin/<variant>.json), so that each engine's figure has ours beside
it at the same lengths. Which variants an engine can load is decided here, from the
serving method's backend, before any job runs; a variant it cannot load is left out with the reason
(the report lists them), never measured as something else.
"""
from __future__ import annotations

from quantbench.backends import get as get_backend

ENGINES = ("builtin", "vllm", "llamacpp")
DEFAULT = ("builtin",)

def serves(engine: str, backend: str, adapter: bool = False) -> str | None:
    """None where `engine` can load a variant served by `backend`; else why not. Which engines
    load a backend's folders is the backend's fact (Backend.ENGINES)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; allowed: {', '.join(ENGINES)}")
    if engine == "builtin":
        return None
    if adapter:
        return "an unmerged LoRA adapter: engines here load merged folders only"
    loaders = get_backend(backend).ENGINES
    if engine not in loaders:
        return (f"{engine} does not load {get_backend(backend).label} folders here"
                f"{'; ' + ', '.join(loaders) + ' does' if loaders else ''}")
    return None


def with_builtin(runs: dict[str, list[str]], order: list[str]) -> dict[str, list[str]]:
    """`runs` (external engine -> variants) plus builtin's cells for every variant one of them runs."""
    if not runs:
        return {}
    measured = {v for vs in runs.values() for v in vs}
    return {"builtin": [v for v in order if v in measured], **runs}


def external(engines) -> list[str]:
    """The engines that run jobs of their own (all but builtin), in ENGINES order."""
    return [e for e in ENGINES if e in engines and e != "builtin"]
