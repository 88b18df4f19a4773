"""The body / embedding-head split in the report, from the committed toy records: records made before
the split leave its columns empty (no number is estimated for them) and their weights bar whole; a
record with the split gets both columns and a hatched embedding/head segment stacked on its body.
Two records are given the split their toy model holds: the toy's untied embedding table and output
head, 512 x 192 float32 each, which fp32 and bnb nf4 both keep unquantized."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from quantbench import validation
from quantbench.records import load_records
from quantbench.report import figures, markdown
from quantbench.report.figures.speed import HEAD_HATCH
from quantbench.report.params import record_paths, report_params

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "results" / "reference" / "cpu" / "toy-llama"
EMBEDDING_HEAD_MB = 2 * 512 * 192 * 4 / 2**20
SPLIT = ("fp32", "bnb-nf4")


def _inputs(tmp_path, split: tuple[str, ...]):
    shutil.copytree(TOY / "records", tmp_path / "records")
    for variant in split:
        path = tmp_path / "records" / "benchmark" / f"{variant}.json"
        rec = json.loads(path.read_text())
        m = rec["metrics"]
        m["embedding_head_mb"] = EMBEDDING_HEAD_MB
        m["body_mb"] = m["weights_memory_mb"] - EMBEDDING_HEAD_MB
        path.write_text(json.dumps(rec))
    exp = validation.build(yaml.safe_load((ROOT / "config/config.yaml").read_text()), cuda_available=True)
    paths = [p for p in record_paths(exp, str(tmp_path)) if Path(p).exists()]
    return figures.inputs(load_records(paths), report_params(exp))


@pytest.fixture(scope="module")
def with_split(tmp_path_factory):
    return _inputs(tmp_path_factory.mktemp("split"), SPLIT)


def _table(text: str) -> pd.DataFrame:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return pd.DataFrame(cells[2:], columns=cells[0]).set_index("variant")


def test_tables_carry_the_split_only_where_recorded(with_split):
    s = with_split.summary.set_index("variant")
    for v in SPLIT:
        assert s.loc[v, "body_mb"] + s.loc[v, "embedding_head_mb"] == pytest.approx(s.loc[v, "weights_memory_mb"])
    others = s.index.difference(list(SPLIT))
    assert len(others) and s.loc[others, ["body_mb", "embedding_head_mb"]].isna().all().all()
    table = _table("\n".join(markdown.inference_section(with_split.summary, with_split.bench,
                                                        with_split.params["generate"])))
    assert float(table.loc["fp32", "embedding_head_mb"]) == pytest.approx(EMBEDDING_HEAD_MB, abs=1e-3)
    assert table.loc["gptq-4bit-g32", "body_mb"] == "–"


def test_records_without_the_split_show_no_split_columns(tmp_path):
    old = _inputs(tmp_path, ())
    assert old.summary.body_mb.isna().all()
    text = "\n".join(markdown.inference_section(old.summary, old.bench, old.params["generate"]))
    assert "body_mb" not in text and "weights_memory_mb" in text
    fig, caption = figures.draw("memory", old)
    assert not any(p.get_hatch() for p in fig.axes[0].patches) and "Hatched" not in caption


def test_memory_figure_stacks_the_embedding_head_on_the_body(with_split):
    fig, caption = figures.draw("memory", with_split)
    ax = fig.axes[0]
    df = with_split.summary.sort_values("weights_memory_mb").reset_index(drop=True)
    solid = [p for p in ax.patches if not p.get_hatch()]
    hatched = [p for p in ax.patches if p.get_hatch() == HEAD_HATCH]
    assert len(solid) == len(hatched) == len(df)
    for i, r in df.iterrows():
        body, head = solid[i], hatched[i]
        assert body.get_width() + head.get_width() == pytest.approx(r.weights_memory_mb)
        assert head.get_x() == pytest.approx(body.get_width())
        assert head.get_width() == pytest.approx(EMBEDDING_HEAD_MB if r.variant in SPLIT else 0.0)
    assert "Hatched" in caption and "predates the split" in caption
