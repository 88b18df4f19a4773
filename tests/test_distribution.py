import math

import torch

from quantbench.distribution import compare


def test_identical_distributions():
    logp = torch.log_softmax(torch.randn(2, 5, 7), -1)
    windows = torch.randint(0, 7, (2, 6))
    m = compare(logp, logp.clone(), windows)
    assert m["kl_mean"] < 1e-7 and m["top1_agreement"] == 1.0 and m["perplexity_ratio"] == 1.0


def test_known_kl():
    p = torch.tensor([[[0.5, 0.5]]]).log()
    q = torch.tensor([[[0.9, 0.1]]]).log()
    m = compare(p, q, torch.tensor([[0, 0]]))
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert abs(m["kl_mean"] - expected) < 1e-6
    assert m["top1_agreement"] == 1.0  # argmax of [0.5, 0.5] is index 0, as of [0.9, 0.1]
    assert abs(m["perplexity_ratio"] - 0.5 / 0.9) < 1e-6


def test_topk_summary_is_exact_when_it_covers_the_vocabulary_and_a_lower_bound_otherwise():
    from quantbench.distribution import summarize

    torch.manual_seed(0)
    ref = torch.log_softmax(torch.randn(3, 9, 50) * 2, -1)
    test = torch.log_softmax(torch.randn(3, 9, 50) * 2, -1)
    windows = torch.randint(0, 50, (3, 10))
    full = compare(ref, test, windows)
    exact = compare(summarize(ref, windows, top_k=50), test, windows)
    coarse = compare(summarize(ref, windows, top_k=5), test, windows)
    assert abs(exact["kl_mean"] - full["kl_mean"]) < 1e-5
    assert 0 < coarse["kl_mean"] <= full["kl_mean"] + 1e-6
    # agreement and perplexities do not depend on k
    for key in ("top1_agreement", "perplexity", "reference_perplexity"):
        assert abs(coarse[key] - full[key]) < 1e-5


def test_scoreboard_statistics_are_ordered_exact_and_inside_their_intervals():
    torch.manual_seed(0)
    windows = torch.randint(0, 40, (10, 25))
    ref = torch.log_softmax(torch.randn(10, 24, 40), -1)
    test = torch.log_softmax(ref + 0.5 * torch.randn(10, 24, 40), -1)
    m = compare(ref, test, windows)
    assert 0 < m["kl_median"] <= m["kl_p99"] <= m["kl_p99_9"] <= m["kl_max"]
    p_ref = ref.gather(-1, windows[:, 1:].unsqueeze(-1)).exp()
    p_test = test.gather(-1, windows[:, 1:].unsqueeze(-1)).exp()
    assert abs(m["delta_p_rms"] - (p_test - p_ref).pow(2).mean().sqrt().item()) < 1e-6
    assert abs(m["ln_perplexity_ratio"] - math.log(m["perplexity_ratio"])) < 1e-5
    for k in ("kl_median", "kl_p99", "kl_p99_9", "delta_p_rms", "delta_p_p5", "delta_p_median", "delta_p_p95"):
        low, high = m[f"{k}_ci95"]
        assert low <= m[k] <= high, k
    same = compare(ref, ref.clone(), windows)
    assert same["kl_max"] < 1e-6 and same["delta_p_rms"] == 0 and same["ln_perplexity_ratio"] == 0
