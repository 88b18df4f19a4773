"""Config checks for the model kind, run before any job: an encoder folder given to a causal-LM
config (or the reverse) is one line naming the folder's config.json and what was expected."""
from __future__ import annotations

import json
import re
from pathlib import Path

from quantbench import package_paths

KINDS = ("causal-lm", "encoder")
# model_type values of encoder-only architectures (a BERT-like stack without a causal mask).
ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "electra", "deberta", "deberta-v2",
                 "albert", "camembert", "modernbert", "nomic_bert", "e5", "xlm"}


def model_kind(config_json: dict) -> str | None:
    """What a model folder's config.json describes: 'causal-lm', 'encoder', or None when unclear."""
    archs = config_json.get("architectures") or []
    if any(a.endswith("ForCausalLM") for a in archs) or config_json.get("is_decoder"):
        return "causal-lm"
    if config_json.get("model_type") in ENCODER_TYPES:
        return "encoder"
    return None


def _config_json(path: str, workdir: str) -> Path | None:
    try:
        folder = Path(package_paths.resolve(path)).expanduser()
    except FileNotFoundError:
        return None
    if not folder.is_absolute():
        folder = Path(workdir) / folder
    found = folder / "config.json"
    return found if found.is_file() else None


def _describe(cfg: dict) -> str:
    return f"model_type {cfg.get('model_type')!r}, architectures {cfg.get('architectures')}"


def kind_errors(config: dict, workdir: str = ".") -> list[str]:
    """The model folder's architecture against model.kind (default causal-lm); [] when the folder is
    not local (a hub id) or its kind cannot be told."""
    model = config.get("model") or {}
    kind = model.get("kind", "causal-lm")
    if model.get("source") != "pretrained" or not isinstance(model.get("path"), str):
        return []
    found = _config_json(model["path"], workdir)
    if found is None:
        return []
    try:
        cfg = json.loads(found.read_text())
    except (OSError, json.JSONDecodeError) as err:
        return [f"model.path: {found} is not readable JSON ({err}); expected a transformers config.json"]
    seen = model_kind(cfg)
    if kind == "causal-lm" and seen == "encoder":
        return [f"model.path: {found} describes a sentence encoder ({_describe(cfg)}); model.kind 'causal-lm' "
                "expects a causal language model (architectures ending in ForCausalLM); set model.kind: encoder"]
    if kind == "encoder" and seen == "causal-lm":
        return [f"model.path: {found} describes a causal language model ({_describe(cfg)}); model.kind 'encoder' "
                f"expects an encoder (model_type one of {', '.join(sorted(ENCODER_TYPES))}); "
                "set model.kind: causal-lm or leave it out"]
    return []


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a folder name under results/<model>/random/


def random_encoder_errors(config: dict, basedir: str = ".") -> list[str]:
    """Each encoder.random_encoders entry: a file name, relative to the project folder, of a
    transformers config.json whose model takes images or audio (synthetic inputs exist for those)."""
    from quantbench.encoder import modality, random_encoder

    errors = []
    for name, arch in ((config.get("encoder") or {}).get("random_encoders") or {}).items():
        key = f"encoder.random_encoders.{name}"
        if not NAME.match(name):
            errors.append(f"{key}: the name is not a folder name; allowed: letters, digits, '_', '.', '-'")
            continue
        path = Path(basedir) / arch
        if not path.is_file():
            errors.append(f"{key}: {arch!r} ({path}) does not exist; expected a transformers config.json "
                          "such as config/architectures/vit-tiny.json")
            continue
        try:
            kind = modality.of_config(random_encoder.load_architecture(path))
        except (OSError, json.JSONDecodeError, KeyError, ValueError) as err:
            errors.append(f"{key}: {arch!r} is not a transformers architecture file ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}); expected a config.json with model_type")
            continue
        if kind == "text":
            errors.append(f"{key}: {arch!r} is a text model; random encoders are for other modalities "
                          "(vision, audio): a text encoder is model.path, with real sentences")
    return errors


def encoder_errors(config: dict, workdir: str = ".", basedir: str = ".") -> list[str]:
    """What the encoder workflow needs besides the schema: a local encoder folder, a sentences file
    of at least two {"text": ...} rows (nearest neighbours need two), and random encoders of other
    modalities that transformers can build (architecture files relative to `basedir`)."""
    errors: list[str] = random_encoder_errors(config, basedir)
    model = config.get("model") or {}
    if model.get("source") != "pretrained":
        errors.append(f"model.source: {model.get('source')!r} is not supported with model.kind 'encoder'; "
                      "allowed: pretrained (a local encoder folder, or pkg:<package>/<folder>)")
    elif isinstance(model.get("path"), str):
        try:
            folder = Path(package_paths.resolve(model["path"])).expanduser()
        except FileNotFoundError as err:
            errors.append(f"model.path: {err}")
        else:
            folder = folder if folder.is_absolute() else Path(workdir) / folder
            if not (folder / "config.json").is_file():
                errors.append(f"model.path: {model['path']!r} ({folder}) has no config.json; expected a local "
                              "encoder folder (config.json, weights, tokenizer files)")
            else:
                errors += kind_errors(config, workdir)
    enc = config.get("encoder") or {}
    spec = enc.get("sentences")
    if not isinstance(spec, str):
        return errors + ["encoder.sentences: missing; allowed: a JSON lines file of {\"text\": ...} rows "
                         "(a path, or pkg:<package>/<file>)"]
    try:
        path = Path(package_paths.resolve(spec)).expanduser()
    except FileNotFoundError as err:
        return errors + [f"encoder.sentences: {err}"]
    path = path if path.is_absolute() else Path(workdir) / path
    from quantbench.encoder.wordnet_examples import is_wordnet_data_file

    if is_wordnet_data_file(spec):  # its examples are extracted by a job
        return errors + ([] if path.is_file() else [f"encoder.sentences: WordNet data file {spec!r} ({path}) "
                                                    "does not exist; allowed: e.g. pkg:wn/data/wordnet-3.3/data.noun"])
    if not path.is_file():
        return errors + [f"encoder.sentences: {spec!r} ({path}) does not exist; allowed: a JSON lines file of "
                         "{\"text\": ...} rows"]
    from quantbench.encoder.sentences import read_sentences

    try:
        n = len(read_sentences(path))
    except ValueError as err:
        return errors + [f"encoder.sentences: {err}"]
    if n < 2:
        errors.append(f"encoder.sentences: {spec!r} has {n} sentence(s); nearest-neighbour agreement needs at least 2")
    return errors
