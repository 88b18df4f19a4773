"""Paired task comparisons (quantbench/report/paired.py) on synthetic per-item data, the per-item file
from lm-eval's logged samples, and the quality table's choice between paired and unpaired noise."""
import json
from pathlib import Path

import numpy as np
import pytest

from quantbench.report import markdown, paired, tables


def _correlated(n=1200, p=0.8, flip=0.05, seed=1):
    """A baseline right on ~p of the items and a variant that answers the same except ~flip of them."""
    rng = np.random.default_rng(seed)
    base = (rng.random(n) < p).astype(int)
    changed = rng.random(n) < flip
    variant = np.where(changed, 1 - base, base)
    return variant, base


def test_paired_interval_is_narrower_when_answers_are_correlated():
    for seed in range(3):
        a, b = _correlated(seed=seed)
        res = paired.paired_bootstrap({"t": (a, b)})
        assert res["low"] <= res["delta"] <= res["high"]
        assert res["delta"] == pytest.approx(100 * (a.mean() - b.mean()))
        assert (res["high"] - res["low"]) / 2 <= paired.unpaired_half_width({"t": (a, b)})
        # with 5% of answers changed, the paired interval is far narrower than the unpaired one
        assert (res["high"] - res["low"]) / 2 < 0.5 * paired.unpaired_half_width({"t": (a, b)})


def test_paired_bootstrap_is_fixed_by_its_seed_and_spans_tasks():
    a1, b1 = _correlated(seed=4)
    a2, b2 = _correlated(n=600, seed=5)
    one = paired.paired_bootstrap({"t1": (a1, b1), "t2": (a2, b2)})
    assert one == paired.paired_bootstrap({"t1": (a1, b1), "t2": (a2, b2)})
    # the Average's delta is the mean over tasks of each task's delta
    assert one["delta"] == pytest.approx(50 * ((a1.mean() - b1.mean()) + (a2.mean() - b2.mean())))
    assert one != paired.paired_bootstrap({"t1": (a1, b1), "t2": (a2, b2)}, seed=1)


def test_one_comparison_has_one_interval_whatever_order_its_tasks_come_in():
    """The scoreboard lists tasks in the suite's order and the recipe figure in sorted order: the same
    comparison must print the same interval from both (it did not while the tasks shared one stream)."""
    per_task = {f"task{i}": _correlated(n=300 + 100 * i, seed=10 + i) for i in range(4)}
    forward = paired.paired_bootstrap(per_task)
    backward = paired.paired_bootstrap(dict(reversed(per_task.items())))
    assert forward == backward
    a = _items({t: x for t, (x, _) in per_task.items()})
    b = _items({t: y for t, (_, y) in per_task.items()})
    assert paired.compare_items(a, b, sorted(per_task)) == paired.compare_items(a, b, sorted(per_task)[::-1])
    with pytest.raises(TypeError):
        paired.paired_bootstrap(list(per_task.values()))


def test_identical_answers_have_a_zero_interval_and_no_flips():
    a, _ = _correlated()
    assert paired.paired_bootstrap({"t": (a, a)}) == {"delta": 0.0, "low": 0.0, "high": 0.0}
    assert paired.flips(a, a) == {"right_to_wrong": 0, "wrong_to_right": 0}


def test_flips_count_each_way():
    base = [1, 1, 1, 0, 0, 1, 0]
    variant = [1, 0, 0, 1, 0, 1, 1]
    assert paired.flips(variant, base) == {"right_to_wrong": 2, "wrong_to_right": 2}
    # same accuracy, four flips: what accuracy alone hides (arXiv 2407.09141)
    assert sum(variant) == sum(base)


def _items(tasks):
    return {"format": paired.FORMAT, "tasks": {t: {"metric": "acc,none", "doc_ids": list(range(len(c))),
                                                  "correct": [int(x) for x in c]} for t, c in tasks.items()}}


def test_compare_items_needs_both_sides_and_the_same_items():
    a, b = _correlated()
    res = paired.compare_items(_items({"t": a}), _items({"t": b}), ["t"])
    assert res["items"] == len(a)
    assert (res["right_to_wrong"], res["wrong_to_right"]) == tuple(paired.flips(a, b).values())
    assert paired.compare_items(_items({"t": a}), _items({"u": b}), ["t"]) is None
    other = _items({"t": b})
    other["tasks"]["t"]["doc_ids"] = other["tasks"]["t"]["doc_ids"][::-1]
    with pytest.raises(ValueError):
        paired.compare_items(_items({"t": a}), other, ["t"])


def test_items_from_lm_eval_samples():
    samples = {"toy_capitals": [{"doc_id": 1, "filter": "none", "acc": 0.0, "acc_norm": 1.0},
                                {"doc_id": 0, "filter": "none", "acc": 1.0, "acc_norm": 1.0}],
               "toy_heldout": [{"doc_id": 0, "filter": "none", "word_perplexity": 3.0}]}
    entries = [{"task": "toy_capitals", "metric": "acc,none"},
               {"task": "toy_heldout", "metric": "word_perplexity,none", "higher_is_better": False},
               {"task": "toy_flags", "metric": "acc,none"}]
    items = paired.items_from_samples(samples, entries)
    assert items == {"format": paired.FORMAT,
                     "tasks": {"toy_capitals": {"metric": "acc,none", "doc_ids": [0, 1], "correct": [1, 0]}}}


def test_items_are_written_atomically_beside_the_lm_eval_json(tmp_path):
    out = tmp_path / "lm_eval" / "v.json"
    path = paired.write_items(out, _items({"t": [1, 0]}))
    assert path == tmp_path / "lm_eval" / "v.items.json"
    assert paired.items_path(out) == path
    rec = tmp_path / "records" / "evaluate" / "v.json"
    assert paired.items_beside([rec, rec], [{"stage": "evaluate", "subject": "v"},
                                            {"stage": "evaluate", "subject": "w"}]) == {"v": _items({"t": [1, 0]})}
    assert not list(tmp_path.rglob(".tmp-*"))


def _eval_record(variant, acc, se):
    return {"stage": "evaluate", "subject": variant, "reference": "fp32", "params": {"evaluate": {"suite": "toy"}},
            "metrics": {"tasks": {"toy_capitals": acc, "toy_flags": acc, "toy_arithmetic": acc, "toy_heldout": 3.0},
                        "tasks_stderr": {"toy_capitals": se, "toy_flags": se, "toy_arithmetic": se},
                        "kl_mean": 0.1, "kl_p99": 0.1, "top1_agreement": 0.9, "perplexity": 2.0,
                        "perplexity_ratio": 1.0}}


def test_quality_table_uses_paired_noise_where_both_have_items_else_unpaired():
    tasks = ["toy_capitals", "toy_flags", "toy_arithmetic"]
    draws = {t: _correlated(n=400, seed=i) for i, t in enumerate(tasks)}
    base_items = _items({t: b for t, (_, b) in draws.items()})
    var_items = _items({t: a for t, (a, _) in draws.items()})
    acc_b = np.mean([b.mean() for _, b in draws.values()])
    acc_a = np.mean([a.mean() for a, _ in draws.values()])
    se = (0.8 * 0.2 / 400) ** 0.5
    recs = [_eval_record("fp32", acc_b, se), _eval_record("q", acc_a, se), _eval_record("old", acc_a, se)]
    q = tables.quality_table(recs, "fp32", {"fp32": base_items, "q": var_items}).set_index("variant")
    assert q.delta_noise_kind["q"] == "paired" and q.delta_noise_kind["old"] == "unpaired"
    assert q.delta_noise_points["q"] < q.delta_noise_points["old"]
    assert q.delta_ci95_low["q"] <= q.delta_average_points["q"] <= q.delta_ci95_high["q"]
    flips = [paired.flips(a, b) for a, b in draws.values()]
    assert q.flips_right_to_wrong["q"] == sum(f["right_to_wrong"] for f in flips)
    assert q.flips_wrong_to_right["q"] == sum(f["wrong_to_right"] for f in flips)
    assert q.within_noise["q"] == (q.reading["q"] == "same within noise")
    note = markdown.quality_section(q.reset_index())[1]
    assert "paired bootstrap over the same items" in note and "for q;" in note and "results (old)" in note
    # no per-item files: today's unpaired noise, said so
    plain = tables.quality_table(recs, "fp32")
    assert set(plain.delta_noise_kind.dropna()) == {"unpaired"} and "flips_right_to_wrong" not in plain
    assert "no per-item results here" in markdown.quality_section(plain)[1]


def test_paired_interval_is_no_wider_than_unpaired_on_the_committed_toy():
    """The toy's committed per-item files (the embedded default's evaluate stage): every variant's paired
    95% half-width against fp32 is at most the unpaired one of the same answers."""
    folder = Path(__file__).resolve().parents[1] / "results" / "reference" / "cpu" / "toy-llama" / "lm_eval"
    base = json.loads((folder / "fp32.items.json").read_text())
    variants = [p for p in sorted(folder.glob("*.items.json")) if p.name != "fp32.items.json"]
    assert len(variants) >= 10
    for path in variants:
        per_task = {t: paired._aligned(json.loads(path.read_text()), base, t) for t in sorted(base["tasks"])}
        res = paired.paired_bootstrap(per_task)
        assert (res["high"] - res["low"]) / 2 <= paired.unpaired_half_width(per_task), path.name
