import pytest

from quantbench.timing import summarize


def test_summarize_median_and_spread():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["median_s"] == 3.0
    assert s["p25_s"] == 2.0 and s["p75_s"] == 4.0
    assert s["iqr_over_median"] == pytest.approx(2.0 / 3.0)
    assert s["repeats"] == 5 and s["min_s"] == 1.0 and s["max_s"] == 100.0


def test_summarize_single_sample():
    s = summarize([0.5])
    assert s["median_s"] == 0.5 and s["iqr_over_median"] == 0.0
