"""Distribution-level quality against a reference model on the same tokens: KL divergence (mean and
99th percentile), top-1 agreement and perplexity ratio, in one pass over a fixed set of tokens.
These catch damage that a 4-choice benchmark hides."""
from __future__ import annotations

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
def next_token_logprobs(model, windows: torch.Tensor, device: str, batch_size: int) -> torch.Tensor:
    """log p(next token) at every position but the last: [n_windows, window-1, vocab], float32."""
    out = []
    for i in tqdm(range(0, len(windows), batch_size), desc="log-probs", mininterval=2):
        ids = windows[i:i + batch_size].to(device)
        logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
        out.append(torch.log_softmax(logits, dim=-1).cpu())
    return torch.cat(out)


def compare(ref: torch.Tensor, test: torch.Tensor, windows: torch.Tensor) -> dict:
    """Metrics of `test` against `ref` log-probs on the targets windows[:, 1:]."""
    if ref.shape != test.shape:
        raise ValueError(f"log-prob shapes differ: reference {tuple(ref.shape)}, test {tuple(test.shape)}")
    ref, test = ref.float(), test.float()
    kl = (ref.exp() * (ref - test)).sum(-1).flatten().clamp_min(0)  # KL(ref || test) per token
    targets = windows[:, 1:].unsqueeze(-1)
    nll_ref = -ref.gather(-1, targets).mean()
    nll_test = -test.gather(-1, targets).mean()
    return {
        "kl_mean": kl.mean().item(),
        "kl_p99": torch.quantile(kl, 0.99).item(),
        "top1_agreement": (ref.argmax(-1) == test.argmax(-1)).float().mean().item(),
        "perplexity": nll_test.exp().item(),
        "reference_perplexity": nll_ref.exp().item(),
        "perplexity_ratio": (nll_test - nll_ref).exp().item(),
        "distribution_tokens": int(kl.numel()),
    }
