"""llama.cpp's own KL divergence (`llama-perplexity --kl-divergence`) beside ours, on the tokens it scored.

llama-perplexity tokenizes a text file itself, cuts the tokens into chunks of n_ctx, puts BOS in each
chunk's first slot where the vocabulary asks for one, and scores only the second half of each chunk
(the logits at positions n_ctx/2 .. n_ctx-2, each predicting the next token). Its base run
(`--kl-divergence-base FILE` without `--kl-divergence`) writes those tokens to FILE and, per scored
position, the base model's log-probs rounded to 16 bits (a step of at most 16/65535 nats, anything more
than 16 nats below the top logit stored as that floor); its KL run reads them back and compares, summing
the KL over the tokens whose stored base log-prob is above -16.

Ours is computed on exactly those tokens and positions: the tokens are read back from the base file,
and the project's own code (distribution.summarize and its per-token metrics, the path evaluate.py
takes) scores the models loaded as the workflow loads them (loading.load_model). tools/llamacpp_kl_check.py
runs it on SmolLM2; tests/test_llamacpp_kl.py on a tiny model.
"""
from __future__ import annotations

import math
import os
import re
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from quantbench import distribution

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "tools" / "build_llama_perplexity.sh"

# llama-perplexity's summary lines, by the names this module gives them; `percent`: printed in %.
REPORTED = {
    "Mean PPL(Q)": ("ppl", False),
    "Mean PPL(base)": ("ppl_base", False),
    "Mean ln(PPL(Q)/PPL(base))": ("ln_ppl_ratio", False),
    "Mean PPL(Q)/PPL(base)": ("ppl_ratio", False),
    "Mean KLD": ("kl_mean", False),
    "Maximum KLD": ("kl_max", False),
    "99.9% KLD": ("kl_p999", False),
    "99.0% KLD": ("kl_p99", False),
    "Median KLD": ("kl_median", False),
    "Mean Δp": ("dp_mean", True),
    "RMS Δp": ("dp_rms", True),
    "Same top p": ("same_top", True),
}
_LINE = re.compile(r"^\s*(?P<name>[^:]+?)\s*:\s*(?P<value>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"
                   r"(?:\s*±\s*(?P<unc>[-+]?\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))?\s*(?P<pct>%)?\s*$")


def binary_path() -> Path:
    """Where tools/build_llama_perplexity.sh leaves the binary (QB_LLAMA_PERPLEXITY names another)."""
    if os.environ.get("QB_LLAMA_PERPLEXITY"):
        return Path(os.environ["QB_LLAMA_PERPLEXITY"])
    version = re.search(r"^llama-cpp-python==(\S+)", (ROOT / "requirements-llamacpp.txt").read_text(), re.M)[1]
    cache = os.environ.get("QB_WHEEL_CACHE") or Path.home() / ".cache" / "quantbench" / f"llama-cpp-python-{version}"
    return Path(cache) / "llama-perplexity"


def build() -> tuple[Path, float | None]:
    """The binary, built once (seconds of wall time when this call built it, else None)."""
    if binary_path().is_file():
        return binary_path(), None
    start = time.monotonic()
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1]), time.monotonic() - start


def parse(log: str) -> dict:
    """llama-perplexity's final statistics: {name: (value, uncertainty or None)}, percentages as
    fractions. Its uncertainties are one standard error over tokens taken as independent."""
    out = {}
    for line in log.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        name = " ".join(m["name"].split())
        if name not in REPORTED:
            continue
        key, percent = REPORTED[name]
        scale = 0.01 if (percent or m["pct"]) else 1.0
        unc = float(m["unc"]) * scale if m["unc"] else None
        out[key] = (float(m["value"]) * scale, unc)
    return out


def _common_args(threads: int, n_ctx: int) -> list[str]:
    # one sequence per decode, as LlamaCppModel runs (-b n_ctx); flash attention off, as
    # llama-cpp-python's default; the KV cache in f16, both defaults
    return ["-c", str(n_ctx), "-b", str(n_ctx), "-t", str(threads), "-fa", "off", "--no-warmup"]


def _run(cmd: list[str], log_file: Path | None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if log_file is not None:
        log_file.write_text(" ".join(cmd) + "\n" + log)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): " + " | ".join(log.splitlines()[-5:]))
    return log


def base_run(binary: Path, gguf: Path, text_file: Path, kld_file: Path, n_ctx: int, chunks: int, threads: int,
             log_file: Path | None = None) -> str:
    """The base model's log-probs (and the tokens they were computed on) into kld_file."""
    return _run([str(binary), "-m", str(gguf), "-f", str(text_file), "--chunks", str(chunks),
                 "--kl-divergence-base", str(kld_file), *_common_args(threads, n_ctx)], log_file)


def kl_run(binary: Path, gguf: Path, kld_file: Path, n_ctx: int, threads: int, log_file: Path | None = None) -> dict:
    """llama.cpp's statistics of `gguf` against the base in kld_file."""
    log = _run([str(binary), "-m", str(gguf), "--kl-divergence-base", str(kld_file), "--kl-divergence",
                *_common_args(threads, n_ctx)], log_file)
    stats = parse(log)
    if "kl_mean" not in stats:
        raise RuntimeError(f"no KL statistics in llama-perplexity's output for {gguf} (fewer than 100 tokens?)")
    return stats


def read_tokens(kld_file: Path) -> torch.Tensor:
    """The [n_chunk, n_ctx] tokens a base file holds (as tokenized, before BOS goes into slot 0)."""
    with open(kld_file, "rb") as f:
        if f.read(8) != b"_logits_":
            raise ValueError(f"{kld_file} is not a llama-perplexity base file")
        n_ctx, n_vocab, n_chunk = struct.unpack("<Iii", f.read(12))
        tokens = np.frombuffer(f.read(4 * n_ctx * n_chunk), dtype="<i4")
    return torch.from_numpy(tokens.astype(np.int64)).view(n_chunk, n_ctx)


def scored_windows(tokens: torch.Tensor, bos: int | None) -> torch.Tensor:
    """The sequences llama.cpp decodes: each chunk with BOS in its first slot where the vocabulary adds one."""
    windows = tokens.clone()
    if bos is not None:
        windows[:, 0] = bos
    return windows


SIXTEEN_BIT = "16-bit"  # a reference kept as llama-perplexity keeps its base (per_token's top_k)


def sixteen_bit(logprobs: torch.Tensor) -> torch.Tensor:
    """Log-probs as llama-perplexity's base file holds them: a floor 16 nats below the top (or the
    lowest value, if higher), steps of (top - floor)/65535 from it, rounded to the nearest step."""
    top = logprobs.max(-1, keepdim=True).values
    floor = torch.maximum(logprobs.min(-1, keepdim=True).values, top - 16)
    scale = (top - floor) / 65535
    steps = torch.where(logprobs > floor, torch.round((logprobs - floor) / torch.where(scale > 0, scale, 1)), 0)
    return scale * steps + floor


def sixteen_bit_per_token(base: torch.Tensor, test: torch.Tensor, windows: torch.Tensor) -> dict:
    """distribution's per-token values the way llama-perplexity computes them from its stored base:
    the KL sums only the tokens whose base log-prob is above -16, and is not clipped at zero."""
    targets = windows[:, 1:].unsqueeze(-1)
    kl = torch.where(base > -16, base.exp() * (base - test), torch.zeros_like(base)).sum(-1)
    return {"kl": kl.flatten(), "agree": (base.argmax(-1) == test.argmax(-1)).flatten().float(),
            "nll_ref": -base.gather(-1, targets).flatten(), "nll_test": -test.gather(-1, targets).flatten()}


def per_token(base_models: dict, variants: dict, windows: torch.Tensor, batch: int = 2) -> dict:
    """Our per-token values on llama.cpp's scored positions, for every (variant, reference) pair.

    base_models: {label: (model, top_k)}: top_k None for the full vocabulary, SIXTEEN_BIT for the
    full vocabulary kept as llama.cpp keeps it (a model may appear under several labels, and may also
    be a variant); variants: {name: model}. Returns {(variant, label): per-token dict of distribution's
    metrics}."""
    first = windows.shape[1] // 2
    parts: dict = {}
    for i in range(0, len(windows), batch):
        w = windows[i:i + batch]
        target_windows = w[:, first:]  # its [:, 1:] are the tokens predicted at positions first..n_ctx-2
        logprobs = {}  # by model identity: a model shared by a reference and a variant runs once

        def lp(model):
            if id(model) not in logprobs:
                logprobs[id(model)] = distribution.next_token_logprobs(model, w, "cpu", batch)[:, first:]
            return logprobs[id(model)]

        refs = {label: sixteen_bit(lp(m)) if k == SIXTEEN_BIT else distribution.summarize(lp(m), target_windows, k)
                for label, (m, k) in base_models.items()}
        for name, model in variants.items():
            test = lp(model)
            for label, ref in refs.items():
                values = sixteen_bit_per_token if isinstance(ref, torch.Tensor) else distribution._per_token
                parts.setdefault((name, label), []).append(values(ref, test, target_windows))
    return {key: {k: torch.cat([p[k] for p in ps]) for k in ps[0]} for key, ps in parts.items()}


def statistics(tokens: dict, n_chunks: int) -> dict:
    """The llama.cpp statistics from our per-token values: {name: (value, 95% half-width or None)};
    KL mean, top-1 agreement and the perplexity ratio as distribution._metrics computes them (its
    interval over the chunks, as evaluate.py reports them)."""
    m = distribution._metrics(tokens, n_chunks=n_chunks)
    kl = tokens["kl"]
    dp = torch.exp(-tokens["nll_test"]) - torch.exp(-tokens["nll_ref"])
    log_ratio = tokens["nll_test"] - tokens["nll_ref"]
    chunk = lambda x: x.view(n_chunks, -1).mean(-1)  # noqa: E731
    half = distribution._interval
    q = lambda f: torch.quantile(kl.double(), f).item()  # noqa: E731 (linear interpolation, as llama.cpp)
    return {
        "kl_mean": (m["kl_mean"], m["kl_mean_ci95"]),
        "kl_median": (q(0.5), None),
        "kl_p99": (q(0.99), None),
        "kl_p999": (q(0.999), None),
        "kl_max": (kl.max().item(), None),
        "same_top": (m["top1_agreement"], m["top1_agreement_ci95"]),
        "dp_mean": (dp.mean().item(), half(chunk(dp))),
        "dp_rms": (math.sqrt((dp ** 2).mean().item()), None),
        "ln_ppl_ratio": (log_ratio.mean().item(), half(chunk(log_ratio))),
        "ppl": (m["perplexity"], None),
        "ppl_base": (m["reference_perplexity"], None),
    }
