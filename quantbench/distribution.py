"""Distribution-level quality against a reference model on the same tokens: KL divergence (mean and
99th percentile), top-1 agreement and perplexity ratio, in one pass over a fixed set of tokens.
These catch damage that a 4-choice benchmark hides."""
from __future__ import annotations

import math

import torch
from tqdm import tqdm


def token_windows(tokenizer, texts: list[str], n_tokens: int, window: int) -> torch.Tensor:
    """A fixed [n_windows, window] tensor of held-out token ids (documents joined by EOS)."""
    ids: list[int] = []
    for t in texts:
        ids.extend(tokenizer(t, add_special_tokens=False).input_ids + [tokenizer.eos_token_id])
        if len(ids) >= n_tokens:
            break
    n_windows = min(len(ids), n_tokens) // window
    if n_windows == 0:
        raise ValueError(f"held-out text has {len(ids)} tokens, fewer than one window of {window}")
    return torch.tensor(ids[: n_windows * window]).view(n_windows, window)


@torch.inference_mode()
def _batches(model, windows: torch.Tensor, device: str, batch_size: int, desc: str, on_device: bool = False):
    """log p(next token) per batch of windows, at every position but the last, float32 on the CPU
    (on `device` with on_device)."""
    # Full-vocabulary logits are batch x window x vocab floats (a 49 152-token vocabulary: 3 GB for 32
    # windows of 512), and log_softmax doubles that: cap each batch's logits at about 256 MB.
    vocab = getattr(getattr(model, "config", None), "vocab_size", None) or 1
    batch_size = max(1, min(batch_size, (256 << 20) // (4 * windows.shape[1] * vocab)))
    for i in tqdm(range(0, len(windows), batch_size), desc=desc, mininterval=2):
        ids = windows[i:i + batch_size]
        logits = model(input_ids=ids.to(device), use_cache=False).logits[:, :-1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        yield (ids.to(device), logprobs) if on_device else (ids, logprobs.cpu())


def next_token_logprobs(model, windows: torch.Tensor, device: str, batch_size: int) -> torch.Tensor:
    """log p(next token) at every position but the last: [n_windows, window-1, vocab], float32."""
    return torch.cat([lp for _, lp in _batches(model, windows, device, batch_size, "log-probs")])


def summarize(logprobs: torch.Tensor, windows: torch.Tensor, top_k: int | None = None) -> dict:
    """What KL, agreement and perplexity need of a reference: its top-k log-probs per position, the
    log of the probability mass outside them, and the log-prob of the actual next token. A real
    vocabulary (49 152 entries) over 50 000 tokens is 10 GB of full log-probs; the top 256 with the
    rest as one bucket is 100 MB, and KL over that coarser partition is a lower bound of the full KL
    (exact when top_k covers the vocabulary)."""
    k = logprobs.shape[-1] if top_k is None else min(top_k, logprobs.shape[-1])
    top, ids = logprobs.topk(k, dim=-1)
    covered = torch.logsumexp(top, dim=-1)
    rest = torch.log1p(-covered.exp().clamp(max=1.0)).clamp_min(-1e4) if k < logprobs.shape[-1] \
        else torch.full_like(covered, float("-inf"))
    return {"topk_ids": ids.int(), "topk_logprobs": top, "rest_logprob": rest,
            "target_logprob": logprobs.gather(-1, windows[:, 1:].unsqueeze(-1)).squeeze(-1)}


def reference_summary(model, windows: torch.Tensor, device: str, batch_size: int, top_k: int | None) -> dict:
    parts = [summarize(lp, ids, top_k) for ids, lp in _batches(model, windows, device, batch_size, "reference")]
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def _per_token(ref: dict, test: torch.Tensor, windows: torch.Tensor) -> dict:
    return _scored(ref, {"topk_logprobs": test.gather(-1, ref["topk_ids"].long()), "argmax": test.argmax(-1),
                         "target_logprob": test.gather(-1, windows[:, 1:].unsqueeze(-1)).squeeze(-1)})


def _scored(ref: dict, test: dict) -> dict:
    """Per-token KL, top-1 agreement and both NLLs from what they need of the test model's log-probs:
    those at the reference's top-k ids, its top token and the log-prob of the actual next token."""
    p_top, q_top = ref["topk_logprobs"], test["topk_logprobs"].to(ref["topk_logprobs"].device)
    kl = (p_top.exp() * (p_top - q_top)).sum(-1)
    rest_p = ref["rest_logprob"]
    if torch.isfinite(rest_p).any():
        q_rest = torch.log1p(-torch.logsumexp(q_top, -1).exp().clamp(max=1.0)).clamp_min(-1e4)
        kl = kl + torch.where(torch.isfinite(rest_p), rest_p.exp() * (rest_p - q_rest), torch.zeros_like(kl))
    return {"kl": kl.flatten().clamp_min(0),
            "agree": (ref["topk_ids"][..., 0].long() == test["argmax"].to(kl.device).long()).flatten().float(),
            "nll_ref": -ref["target_logprob"].flatten(),
            "nll_test": -test["target_logprob"].to(kl.device).flatten()}


Z95 = 1.959964


def _interval(per_chunk: torch.Tensor) -> float:
    """Half-width of a 95% interval of the mean over chunks (normal approximation)."""
    n = per_chunk.numel()
    return float(Z95 * per_chunk.std() / n ** 0.5) if n > 1 else float("nan")


BOOTSTRAP = 200  # resamples of the windows for the intervals of quantiles (fixed seed: reproducible)
KL_QUANTILES = {"kl_median": 0.5, "kl_p99": 0.99, "kl_p99_9": 0.999, "kl_max": 1.0}
DP_QUANTILES = {"delta_p_p1": 0.01, "delta_p_p5": 0.05, "delta_p_median": 0.5, "delta_p_p95": 0.95,
                "delta_p_p99": 0.99}


def _quantile_intervals(x: torch.Tensor, qs: dict[str, float], n_chunks: int) -> dict:
    """Each quantile of x with a 95% interval [low, high] from a bootstrap over the windows (tokens
    within a window are not independent); the maximum's interval is that of the largest value drawn."""
    by_window = x.view(n_chunks, -1)
    gen = torch.Generator().manual_seed(0)
    picks = torch.randint(n_chunks, (BOOTSTRAP, n_chunks), generator=gen)
    levels = torch.tensor(list(qs.values()), dtype=x.dtype)
    boot = torch.stack([torch.quantile(by_window[i].flatten(), levels) for i in picks])  # [resamples, quantiles]
    low, high = torch.quantile(boot, torch.tensor([0.025, 0.975], dtype=x.dtype), dim=0)
    point = torch.quantile(x, levels)
    out = {}
    for j, name in enumerate(qs):
        out[name] = point[j].item()
        out[f"{name}_ci95"] = [low[j].item(), high[j].item()]
    return out


def _scoreboard(tokens: dict, n_chunks: int) -> dict:
    """The rest of llama.cpp's perplexity scoreboard (tools/perplexity/README.md, "LLaMA 3 8b
    Scoreboard"): KL median, p99.9 and max; the change in the probability of the correct token (Δp)
    as an RMS and percentiles; ln of the perplexity ratio; each with its 95% interval."""
    kl = tokens["kl"]
    dp = (-tokens["nll_test"]).exp() - (-tokens["nll_ref"]).exp()
    chunk = dp.view(n_chunks, -1).pow(2).mean(-1)
    ms = chunk.mean()
    half = _interval(chunk)
    log_ratio = (tokens["nll_test"] - tokens["nll_ref"]).view(n_chunks, -1).mean(-1)
    return {**_quantile_intervals(kl, KL_QUANTILES, n_chunks),
            "delta_p_rms": ms.sqrt().item(),
            "delta_p_rms_ci95": [max(ms.item() - half, 0.0) ** 0.5, (ms.item() + half) ** 0.5],
            **_quantile_intervals(dp, DP_QUANTILES, n_chunks),
            "ln_perplexity_ratio": log_ratio.mean().item(), "ln_perplexity_ratio_ci95": _interval(log_ratio)}


def _metrics(tokens: dict, n_chunks: int = 1) -> dict:
    """The metrics, each with a 95% interval over `n_chunks` equal chunks of the tokens (the held-out
    windows): tokens within a window are not independent, windows nearly are."""
    kl, nll_ref, nll_test = tokens["kl"], tokens["nll_ref"].mean(), tokens["nll_test"].mean()
    chunk = lambda x: x.view(n_chunks, -1).mean(-1)  # noqa: E731
    log_ratio = chunk(tokens["nll_test"] - tokens["nll_ref"])
    half = _interval(log_ratio)
    ratio = (nll_test - nll_ref).exp().item()
    return {
        "kl_mean_ci95": _interval(chunk(kl)),
        "top1_agreement_ci95": _interval(chunk(tokens["agree"])),
        "perplexity_ratio_ci95": [ratio * math.exp(-half), ratio * math.exp(half)],
        "distribution_chunks": n_chunks,
        "kl_mean": kl.mean().item(),
        "top1_agreement": tokens["agree"].mean().item(),
        "perplexity": nll_test.exp().item(),
        "reference_perplexity": nll_ref.exp().item(),
        "perplexity_ratio": ratio,
        "distribution_tokens": int(kl.numel()),
        **_scoreboard(tokens, n_chunks),
    }


def compare(ref: torch.Tensor | dict, test: torch.Tensor, windows: torch.Tensor) -> dict:
    """Metrics of `test` log-probs against the reference (full log-probs or a summary) on the
    targets windows[:, 1:]."""
    if not isinstance(ref, dict):
        if ref.shape != test.shape:
            raise ValueError(f"log-prob shapes differ: reference {tuple(ref.shape)}, test {tuple(test.shape)}")
        ref = summarize(ref.float(), windows)
    return _metrics(_per_token(ref, test.float(), windows), n_chunks=len(windows))


def compare_model(ref: dict, model, windows: torch.Tensor, device: str, batch_size: int,
                  on_device: bool = False, window_scores=None) -> dict:
    """compare() against a reference summary, streaming the model's log-probs batch by batch.
    on_device: compare on `device` (a GPU: no vocabulary-wide copy to the host per batch; the
    sensitivity sweep's hundreds of passes need it); the evaluate stage compares on the CPU.
    window_scores(ids, topk_ids): a runtime's own per-window scores (_scored's `test`) instead of its logits."""
    parts = []
    if window_scores is not None:
        # the runtime computes each window's scores where its logits are (llama.cpp, maybe in a worker
        # process: LlamaCppModel.window_scores): a window's full-vocabulary log-probs stay there
        for i in tqdm(range(len(windows)), desc="log-probs", mininterval=2):
            test = {k: v[None] for k, v in window_scores(windows[i], ref["topk_ids"][i]).items()}
            parts.append(_scored({k: v[i:i + 1] for k, v in ref.items()}, test))
    else:
        start = 0
        for ids, lp in _batches(model, windows, device, batch_size, "log-probs", on_device):
            chunk = {k: v[start:start + len(ids)].to(lp.device) for k, v in ref.items()}
            parts.append({k: v.cpu() for k, v in _per_token(chunk, lp, ids).items()})
            start += len(ids)
    return _metrics({k: torch.cat([p[k] for p in parts]) for k in parts[0]}, n_chunks=len(windows))
