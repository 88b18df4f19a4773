"""The committed GPU runs of the blog comparison's tables (results/reference/h100/llama2-7b-*): each
folder's comparison.md is tools/gpu/comparison.py's output for its committed report, and every figure
its README quotes is one of those tables' or the run's own CSVs and files, as printed there."""
from __future__ import annotations

import re
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools" / "gpu"))
import comparison  # noqa: E402

RUNS = sorted((ROOT / "results" / "reference" / "h100").glob("llama2-7b-*/comparison.md"))
NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+)(?![\d.])")


def _printed(folder) -> set[str]:
    """Every decimal the run's own files print, and every CSV value rounded as a reading would quote it."""
    seen = set()
    for name in ("comparison.md", "progress.txt", "environment.txt"):
        seen |= set(NUMBER.findall((folder / name).read_text()))
    for csv in (folder / "report").glob("*.csv"):
        if csv.stat().st_size <= 1:  # a table with no rows (summary.csv of a fine-tune-only run)
            continue
        for value in pd.read_csv(csv).select_dtypes("number").to_numpy().ravel():
            if pd.notna(value):
                seen |= {f"{value:.{d}f}" for d in (1, 2, 3)}
    return seen


@pytest.mark.parametrize("table", RUNS, ids=lambda p: p.parent.name)
def test_comparison_is_the_tools_output_and_the_readme_quotes_only_it(table, monkeypatch):
    folder = table.parent
    assert len(RUNS) >= 3
    monkeypatch.chdir(folder)  # the tables are made from inside the folder: `comparison.py report`
    assert comparison.render(folder.relative_to(folder) / "report") == table.read_text()
    readme = (folder / "README.md").read_text()
    quoted = set(NUMBER.findall(readme))
    assert quoted, "the reading quotes no figure"
    assert quoted <= _printed(folder), sorted(quoted - _printed(folder))
