"""What the benchmark does to steady its own timings (quantbench/steady_host.py), on a tiny real
Llama's generate on the CPU: cheap cells get more calls up to the cap, no timed call sees the
collector, and pinning is left to CUDA runs (where host threads launch rather than compute)."""
from __future__ import annotations

import gc
import time

from quantbench import benchmark, steady_host


def test_a_cheap_cell_is_called_until_min_timed_s_and_never_past_max_repeats(tiny_model):
    from quantbench.loading import load_model
    from quantbench.modelio import RunContext

    model, tok, _ = load_model(str(tiny_model), RunContext(device="cpu", dtype_name="float32"))
    spec = {"prompt_len": 4, "new_tokens": [3], "batch_sizes": [1], "use_cache": [True]}
    common = dict(avoid={tok.eos_token_id, tok.pad_token_id}, pad_token_id=tok.pad_token_id, weights_mb=1.0,
                  bandwidth_gb_per_s=None, kv_bytes=4)
    (plain,) = benchmark.run_generate(model, model.config.vocab_size, "cpu", spec, 1, 3, 0, **common)
    assert plain["repeats"] == 3  # min_timed_s off: the config's repeats, as before
    # a call of a few milliseconds never reaches 60 s: the cap decides
    (capped,) = benchmark.run_generate(model, model.config.vocab_size, "cpu", spec, 1, 3, 0, **common,
                                       min_timed_s=60.0, max_repeats=9)
    assert capped["repeats"] == 9



def test_calls_stop_once_they_reach_the_floor():
    # 0.1 s calls against a 0.45 s floor: three calls are not enough, five are (a loaded host only
    # lengthens a sleep, so the count can only fall, never below four: 3 x 0.1 s < 0.45 s needs each
    # call 50 ms late)
    lat, _, _, _, _ = benchmark._timed_runs(lambda: time.sleep(0.1), "cpu", warmup=0, repeats=3,
                                            min_timed_s=0.45, max_repeats=400)
    assert 4 <= len(lat) <= 5 and sum(lat) >= 0.45


def test_timed_calls_run_without_the_collector_and_it_is_back_after_them():
    seen = []

    def fn():
        seen.append(gc.isenabled())
        time.sleep(0.001)

    lat, _, _, _, _ = benchmark._timed_runs(fn, "cpu", warmup=1, repeats=4)
    assert len(lat) == 4 and seen == [True, False, False, False, False]  # the warm-up is not timed
    assert gc.isenabled()


def test_another_call_is_due_until_repeats_then_while_under_the_floor_and_cap():
    due = steady_host.another_call_due
    assert due(2, 100.0, repeats=3, min_timed_s=0.0, max_repeats=0)
    assert not due(3, 0.1, repeats=3, min_timed_s=0.0, max_repeats=0)
    assert due(3, 0.1, repeats=3, min_timed_s=1.0, max_repeats=5)
    assert not due(5, 0.1, repeats=3, min_timed_s=1.0, max_repeats=5)
    assert not due(4, 1.0, repeats=3, min_timed_s=1.0, max_repeats=5)


def test_pinning_is_for_cuda_runs_only():
    import os

    before = os.sched_getaffinity(0)
    host = steady_host.pin("cpu", 2)
    assert host["pinned_cores"] is None and os.sched_getaffinity(0) == before
