"""A library warning is printed once per job. bitsandbytes logs "MatMul8bitLt: inputs will be cast
from torch.float32 to float16 during quantization" on every int8 matmul of a float32 run (28 lines per
forward of a two-layer model; most of the main command's log); the first line says it all, the
thousands after it hide what else the job said. Errors are never held back, and neither is anything
the project itself logs."""
from __future__ import annotations

import logging

SUFFIX = " (printed once per job)"


class OncePerJob(logging.Filter):
    """Lets a library's record below ERROR through the first time its text is seen, drops repeats."""

    def __init__(self, own_loggers: tuple[str, ...] = ("quantbench", "__main__")):
        super().__init__()
        self.own = own_loggers
        self.seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR or record.name.split(".")[0] in self.own:
            return True
        text = record.getMessage()
        key = (record.name, record.levelno, text)
        if key in self.seen:
            return False
        self.seen.add(key)
        # Handlers format msg % args: the message, already formatted, is stored without args.
        record.msg, record.args = text + SUFFIX, None
        return True


def install() -> OncePerJob:
    """Adds one OncePerJob to every handler of the root logger (a filter on the handler sees the
    records that libraries' loggers propagate to it; one on the root logger would not)."""
    once = OncePerJob()
    for handler in logging.getLogger().handlers:
        handler.addFilter(once)
    return once
