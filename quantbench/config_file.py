"""A config file as written, before anyone reads its values: it exists, is UTF-8, parses as YAML,
and names no key twice (YAML's last duplicate silently wins, so `gptq-4bit: ...` written twice
would quietly measure only the second one). One line per problem, naming the file and the line.

Snakemake parses `--configfile` itself before the workflow runs, with a message that names neither
the file nor the line (or a traceback for a missing file); `scripts/run.sh` runs this module on the
same arguments first, and the Snakefile checks the files it reads (duplicates pass Snakemake).
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


def problems(path: str | Path) -> list[str]:
    """Everything wrong with one config file as a file; [] when it can be read as one mapping."""
    path = Path(path)
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
    if not isinstance(data, dict):
        return [f"{path}: the file holds {type(data).__name__ if data is not None else 'nothing'}; "
                "allowed: a mapping of config keys (model:, methods:, ...)"]
    return [f"{path}, line {second}: key {key!r} is given twice (first at line {first}); YAML keeps only the "
            "last one; allowed: each key once" for key, first, second in _dotted_duplicates(text)]


def configfiles_in(argv: list[str]) -> list[str]:
    """The files a snakemake command line names with --configfile (several may follow one flag)."""
    files, taking = [], False
    for arg in argv:
        flag, eq, value = arg.partition("=")
        if flag in CONFIGFILE_FLAGS:
            taking = not eq
            if eq:
                files.append(value)
        elif taking and not arg.startswith("-"):
            files.append(arg)
        else:
            taking = False
    return files


def check(paths) -> None:
    """Raise ConfigError listing the problems of every file in paths."""
    from quantbench.experiment import ConfigError

    errors = [e for p in paths for e in problems(p)]
    if errors:
        raise ConfigError(errors)


def main(argv: list[str]) -> int:
    """Check the config files of a snakemake command line (scripts/run.sh passes its arguments)."""
    from quantbench.experiment import ConfigError

    try:
        check(configfiles_in(argv))
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
