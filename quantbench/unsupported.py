"""The one exception a benchmark cell raises when the runtime cannot run it as asked: the cell is
recorded with outcome 'unsupported' and the reason, not as an error (a failure of ours)."""


class Unsupported(RuntimeError):
    """A benchmark cell this runtime or kernel cannot run as asked."""
