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
