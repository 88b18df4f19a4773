"""Quality of a (weights, KV cache) pair at long context, per position bucket.

Each held-out window is fed in chunks through one cache, so that every chunk after the first attends
to what the cache stored of the earlier ones (quantized, for a quantized cache); the reference is the
baseline model on the same chunks with the plain cache. Per predicted position: KL against the
reference's top-k summary (distribution.summarize: a lower bound of the full KL where k is below the
vocabulary), top-1 agreement and the two log-likelihoods; these are then averaged per position bucket,
each bucket's interval taken over its chunks (the unit of the chunked pass: tokens inside one share
their keys and are not independent).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from quantbench import distribution

Z95 = distribution.Z95


def text(name: str) -> str:
    """The long English text the windows are cut from. pydoc-topics: CPython's pydoc_data/topics.py,
    the Language Reference's topics as pydoc shows them (~460 000 characters), part of every Python
    install, so an offline node has it; any other name is a .txt file."""
    if name == "pydoc-topics":
        from pydoc_data import topics

        return "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
    return Path(name).read_text()


def windows(token_ids: list[int], contexts: list[int], counts: list[int]) -> dict[int, torch.Tensor]:
    """{context: [n, context] token ids}: consecutive, non-overlapping windows from the start of the text
    (the windows of each context are cut independently)."""
    out = {}
    for ctx, n in zip(contexts, counts):
        have = len(token_ids) // ctx
        if have < n:
            raise ValueError(f"the text holds {len(token_ids)} tokens: {have} windows of {ctx}, "
                             f"fewer than the {n} asked")
        out[ctx] = torch.tensor(token_ids[: n * ctx]).view(n, ctx)
    return out


def buckets(contexts: list[int]) -> list[tuple[int, int]]:
    """Position buckets [0, c1), [c1, c2), ...: one per configured context length."""
    edges = [0, *contexts]
    return list(zip(edges[:-1], edges[1:]))


@torch.inference_mode()
def chunked_logprobs(model, window: torch.Tensor, chunk: int, cache):
    """Yield (start, log p(next) [n, vocab] float32 on the CPU, targets [n+1]) per chunk of one window,
    fed through `cache` (None: each chunk alone, no cache: only for tests). Predictions stop at the
    window's second-to-last position."""
    device = next(model.parameters()).device
    n_pos = window.numel()
    for start in range(0, n_pos - 1, chunk):
        ids = window[start:start + chunk]
        out = model(input_ids=ids[None].to(device), past_key_values=cache, use_cache=True)
        keep = min(len(ids), n_pos - 1 - start)
        yield start, torch.log_softmax(out.logits[0, :keep].float(), -1).cpu(), window[start:start + keep + 1]


def full_logprobs(model, window: torch.Tensor) -> torch.Tensor:
    """One forward over the whole window, no cache: what the chunked reference must equal."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(input_ids=window[None].to(device), use_cache=False).logits[0, :-1]
    return torch.log_softmax(logits.float(), -1).cpu()


def per_token(ref: dict, logprobs: torch.Tensor, targets: torch.Tensor) -> dict:
    """distribution's per-token values of one chunk: kl, agree, nll_ref, nll_test ([n] each)."""
    return distribution._per_token({k: v[None] for k, v in ref.items()}, logprobs[None], targets[None])


def summarize_chunk(logprobs: torch.Tensor, targets: torch.Tensor, top_k: int | None) -> dict:
    return {k: v[0] for k, v in distribution.summarize(logprobs[None], targets[None], top_k).items()}


def bucket_blocks(values: list[dict], starts: list[int], edges: list[tuple[int, int]], chunk: int) -> dict:
    """Per bucket (named 'lo-hi'), each chunk's mean KL, agreement and ln(p_ref/p_test) (the
    log-perplexity ratio) and its token count; `values`: per-chunk per-token dicts at `starts`."""
    out = {}
    for lo, hi in edges:
        blocks = {"kl": [], "top1": [], "ln_ratio": [], "nll_ref": [], "tokens": []}
        for v, s in zip(values, starts):
            if not lo <= s < hi:
                continue
            blocks["kl"].append(v["kl"].mean().item())
            blocks["top1"].append(v["agree"].mean().item())
            blocks["ln_ratio"].append((v["nll_test"] - v["nll_ref"]).mean().item())
            blocks["nll_ref"].append(v["nll_ref"].mean().item())
            blocks["tokens"].append(int(v["kl"].numel()))
        if blocks["tokens"]:
            out[f"{lo}-{hi}"] = blocks
    return out


def interval(blocks: list[float], weights: list[int]) -> tuple[float, float]:
    """Token-weighted mean of per-chunk means and the half-width of its 95% interval over chunks."""
    w = torch.tensor(weights, dtype=torch.float64)
    x = torch.tensor(blocks, dtype=torch.float64)
    mean = float((w * x).sum() / w.sum())
    n = len(blocks)
    if n < 2:
        return mean, float("nan")
    var = float((w * (x - mean) ** 2).sum() / w.sum()) * n / (n - 1)
    return mean, Z95 * math.sqrt(var / n)


def bucket_metrics(blocks: dict) -> dict:
    """KL mean, top-1 agreement and perplexity ratio of one bucket, each with its 95% interval."""
    kl, kl_ci = interval(blocks["kl"], blocks["tokens"])
    top1, top1_ci = interval(blocks["top1"], blocks["tokens"])
    ln_r, ln_ci = interval(blocks["ln_ratio"], blocks["tokens"])
    return {"kl_mean": kl, "kl_mean_ci95": kl_ci, "top1_agreement": top1, "top1_agreement_ci95": top1_ci,
            "perplexity_ratio": math.exp(ln_r),
            "perplexity_ratio_ci95": [math.exp(ln_r - ln_ci), math.exp(ln_r + ln_ci)] if ln_ci == ln_ci else None,
            "tokens": sum(blocks["tokens"]), "chunks": len(blocks["tokens"])}


def reference_pass(model, window: torch.Tensor, chunk: int, top_k: int | None) -> dict:
    """The baseline's summary of one window through the plain cache: {key: [window-1, ...]}."""
    from quantbench.kv_cache import make_cache

    parts = [summarize_chunk(lp, tg, top_k) for _, lp, tg in chunked_logprobs(model, window, chunk,
                                                                              make_cache(None, model.config))]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def score_windows(passes, ref: dict, edges: list[tuple[int, int]], chunk: int) -> dict:
    """Per bucket, the chunk means of one context's windows; `passes`: per window, an iterator of
    (start, logprobs, targets) as chunked_logprobs yields; `ref`: that context's reference summary
    ({key: [n_windows, window-1, ...]})."""
    values, starts = [], []
    for w, chunks in enumerate(passes):
        for start, lp, targets in chunks:
            sl = {k: v[w, start:start + lp.shape[0]] for k, v in ref.items()}
            values.append(per_token(sl, lp, targets))
            starts.append(start)
    return bucket_blocks(values, starts, edges, chunk)
