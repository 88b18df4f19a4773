"""A library warning is logged once per job. bitsandbytes logs "MatMul8bitLt: inputs will be cast
from torch.float32 to float16 during quantization" on every int8 matmul of a float32 run (28 lines per
forward pass of a two-layer model; most of the main command's log): the first line says it all, and
the thousands after it hide what else the job said. Where a message repeats, one short line says so
(with the time of the first), then its repeats are dropped. Errors are never held back, and neither is
anything the project itself logs (the workflow scripts log through the root logger)."""
from __future__ import annotations

import logging
import time


class OncePerJob(logging.Filter):
    """Lets a library's record below ERROR through the first time its text is seen; on the first
    repeat, a note in its place; later repeats are dropped."""

    def __init__(self, own_loggers: tuple[str, ...] = ("quantbench", "__main__", "root")):
        super().__init__()
        self.own = own_loggers
        self.first_seen: dict[tuple[str, int, str], float] = {}
        self.noted: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR or record.name.split(".")[0] in self.own:
            return True
        key = (record.name, record.levelno, record.getMessage())
        if key not in self.first_seen:
            self.first_seen[key] = record.created
            return True
        if key in self.noted:
            return False
        self.noted.add(key)
        first = time.strftime("%H:%M:%S", time.localtime(self.first_seen[key]))
        text = key[2] if len(key[2]) <= 40 else key[2][:40] + "..."
        # Handlers format msg % args: the note carries no args.
        record.msg, record.args = f"{text!r} (first at {first}) repeats; its repeats are not logged in this job", None
        return True


def install() -> OncePerJob:
    """Adds one OncePerJob to every handler of the root logger (a filter on the handler sees the
    records that libraries' loggers propagate to it; one on the root logger would not)."""
    once = OncePerJob()
    for handler in logging.getLogger().handlers:
        handler.addFilter(once)
    return once
