"""A config file as written, before anyone reads its values: it exists, is UTF-8, parses as YAML,
and names no key twice (YAML's last duplicate silently wins, so `gptq-4bit: ...` written twice
would quietly measure only the second one). One line per problem, naming the file and the line.

Snakemake parses `--configfile` itself before the workflow runs (in its command line, before the
Snakefile is read), with a message that names neither the file nor the line (or a traceback for a
missing file or a non-UTF-8 byte); no code of a workflow runs before that. So `scripts/run.sh` and
`scripts/snakemake` (snakemake with this check first: the command for a cluster) run this module on
the same arguments first, and the Snakefile checks the files it reads (duplicates pass Snakemake).
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

CONFIGFILE_FLAGS = ("--configfile", "--configfiles")


def _dotted_duplicates(text: str) -> list[tuple[str, int, int]]:
    """Duplicated keys as dotted paths (methods.gptq-4bit), with the lines of both occurrences."""
    out = []

    def walk(node, prefix):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                path = f"{prefix}.{key}" if prefix else str(key)
                line = key_node.start_mark.line + 1
                if key is not None and key in seen:
                    out.append((path, seen[key], line))
                elif key is not None:
                    seen[key] = line
                walk(value_node, path)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{prefix}[{i}]")

    walk(yaml.compose(text, Loader=yaml.SafeLoader), "")
    return out


CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def problems(path: str | Path, after: str | None = None) -> list[str]:
    """Everything wrong with one config file as a file; [] when it can be read as one mapping.
    `after`: the config file it follows on the command line (Snakemake's --configfile takes every
    word up to the next flag, so a target written there is read as a second config file)."""
    path = Path(path)
    if after is not None and (path.is_dir() or path.suffix not in CONFIG_SUFFIXES):
        what = "it is a folder" if path.is_dir() else ("it does not exist" if not path.exists() else
                                                        "it is not a .yaml, .yml or .json file")
        return [_target_message(path, after, what)]
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        what = "is a folder" if path.is_dir() else "does not exist"
        return [f"{path}: config file {what}{where}; allowed: a YAML file, e.g. config/config.yaml"]
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        return [f"{path}, line {line}: byte 0x{raw[err.start]:02x} is not UTF-8; allowed: a UTF-8 file "
                "(re-save it as UTF-8)"]
    try:
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = " ".join(filter(None, [getattr(err, "context", None), getattr(err, "problem", None)])) or str(err)
        return [f"{path}{where}: not valid YAML ({what}); allowed: YAML, e.g. `key: value`, spaces not tabs"]
    if after is not None and not (isinstance(data, dict) and set(data) & set(_config_keys())):
        # a record or other output (results/<model>/records/*.json) named as a target
        return [_target_message(path, after, "it holds none of the config's keys")]
    if not isinstance(data, dict):
        return [f"{path}: the file holds {type(data).__name__ if data is not None else 'nothing'}; "
                "allowed: a mapping of config keys (model:, methods:, ...)"]
    return [f"{path}, line {second}: key {key!r} is given twice (first at line {first}); YAML keeps only the "
            "last one; allowed: each key once" for key, first, second in _dotted_duplicates(text)]


def _target_message(path: Path, after: str, what: str) -> str:
    return (f"{path}: written after --configfile {after}, so Snakemake reads it as a second config file ({what}); "
            f"allowed: a target before --configfile (put targets first: snakemake {path} --configfile {after} "
            f"...), or --configfile={after} {path}")


def _config_keys() -> list[str]:
    """The top-level keys a config may hold (the schema's)."""
    from quantbench.config_messages import SCHEMA_PATH

    return list(yaml.safe_load(SCHEMA_PATH.read_text()).get("properties", {}))


def configfile_words(argv: list[str]) -> list[tuple[str, str | None]]:
    """(file, the file it follows after the same flag, or None) for every word a snakemake command
    line gives --configfile (several may follow one flag)."""
    files, taking, previous = [], False, None
    for arg in argv:
        flag, eq, value = arg.partition("=")
        if flag in CONFIGFILE_FLAGS:
            taking, previous = not eq, None
            if eq:
                files.append((value, None))
        elif taking and not arg.startswith("-"):
            files.append((arg, previous))
            previous = arg
        else:
            taking = False
    return files


def configfiles_in(argv: list[str]) -> list[str]:
    """The files a snakemake command line names with --configfile."""
    return [f for f, _ in configfile_words(argv)]


def check(paths) -> None:
    """Raise ConfigError listing the problems of every file in paths (or of (file, follows) pairs)."""
    from quantbench.config_messages import ConfigError

    pairs = [p if isinstance(p, tuple) else (p, None) for p in paths]
    errors = [e for p, after in pairs for e in problems(p, after)]
    if errors:
        raise ConfigError(errors)


def overlay_problems(config: dict, files: list[str]) -> list[str]:
    """Config files that together hold no `model:` section are overlays given without the setup they
    extend (config/overlays/*.yaml add a method to a setup): say so, rather than list the setup's keys
    as missing."""
    if not files or "model" in config:
        return []
    here = Path.cwd()
    shown = " ".join(str(Path(f).relative_to(here)) if Path(f).is_relative_to(here) else str(f) for f in files)
    return [f"{shown}: no model: section, so {'this is an overlay' if len(files) == 1 else 'these are overlays'} "
            f"(it adds to a setup); allowed: the setup first, then the overlay, e.g. --configfile "
            f"config/smollm2.yaml {shown}"]


def main(argv: list[str]) -> int:
    """Check the config files of a snakemake command line (scripts/run.sh passes its arguments)."""
    from quantbench.config_messages import ConfigError

    try:
        check(configfile_words(argv))
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
