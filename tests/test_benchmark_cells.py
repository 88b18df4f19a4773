"""One timed cell: spread retries and the energy fields, on the CPU (no NVML counter there)."""
from __future__ import annotations

import itertools
import time

from quantbench import benchmark


def _sleeper(durations_s):
    it = itertools.cycle(durations_s)

    def fn():
        time.sleep(next(it))
    return fn


def test_a_noisy_cell_is_measured_again_and_marked():
    # 1 ms and 30 ms alternating: IQR/median far above 5% on any machine, every attempt.
    cell = benchmark._cell(_sleeper([0.001, 0.030]), "cpu", warmup=0, repeats=4, retries=2, spread_limit=0.05)
    assert cell["outcome"] == "ok"
    assert cell["attempts"] == 3 and cell["spread_above_limit"] is True
    assert cell["iqr_over_median"] > 0.05


def test_a_steady_cell_is_measured_once():
    # 50 ms sleeps against a 100% limit: the scheduler's jitter on a loaded machine (a few ms) cannot
    # reach it, so the first attempt stands
    cell = benchmark._cell(_sleeper([0.050]), "cpu", warmup=0, repeats=3, retries=2, spread_limit=1.0)
    assert cell["attempts"] == 1 and cell["spread_above_limit"] is False


def test_energy_is_reported_missing_with_its_reason_off_the_gpu():
    cell = benchmark._cell(_sleeper([0.001]), "cpu", warmup=0, repeats=2)
    assert "energy_j_per_call" not in cell and "avg_power_w" not in cell
    assert cell["energy_error"] == "no energy counter on cpu"
