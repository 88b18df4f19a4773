"""Our KL against llama.cpp's own KL tool (`llama-perplexity --kl-divergence`, quantbench/llamacpp_kl.py).

What needs no binary runs everywhere: reading its printed summary and its base file, and the 16-bit
storage it keeps the base's log-probs in. The agreement itself needs llama-perplexity, which the lean
llama.cpp build lacks: it runs where tools/build_llama_perplexity.sh has built it (about 9 minutes on 2
cores, once; CI does not build it, so there it is skipped, with that reason). The SmolLM2 cross-check
is committed in results/reference/cpu/smollm2-135m/kl_crosscheck.md."""
from __future__ import annotations

import struct

import pytest
import torch

from quantbench import llamacpp_kl

SUMMARY = """\
====== Perplexity statistics ======
Mean PPL(Q)                   :  22.655300 ±   2.113067
Mean PPL(base)                :  22.528101 ±   2.102707
Cor(ln(PPL(Q)), ln(PPL(base))):  99.92%
Mean ln(PPL(Q)/PPL(base))     :   0.005630 ±   0.003642
Mean PPL(Q)/PPL(base)         :   1.005646 ±   0.003663

====== KL divergence statistics ======
Mean    KLD:   0.005572 ±   0.000195
Maximum KLD:   0.074443
99.9%   KLD:   0.069392
99.0%   KLD:   0.027240
Median  KLD:   0.004245
 1.0%   KLD:   0.000046

====== Token probability statistics ======
Mean    Δp: -0.118 ± 0.057 %
Maximum Δp:  7.426%
RMS Δp    :  1.832 ± 0.085 %
Same top p: 95.784 ± 0.629 %
"""


def test_parse_reads_the_summary_llama_perplexity_prints():
    stats = llamacpp_kl.parse(SUMMARY)
    assert stats["kl_mean"] == (0.005572, 0.000195)
    assert stats["kl_max"] == (0.074443, None) and stats["kl_median"] == (0.004245, None)
    assert stats["kl_p999"][0] == 0.069392 and stats["kl_p99"][0] == 0.027240
    assert stats["ln_ppl_ratio"] == (0.005630, 0.003642) and stats["ppl_base"][0] == 22.528101
    # percentages become fractions
    assert stats["dp_mean"][0] == pytest.approx(-0.00118) and stats["dp_rms"][0] == pytest.approx(0.01832)
    assert stats["same_top"][0] == pytest.approx(0.95784)
    # every line it names is read; the others (the 1% percentile, maximum Δp, the correlation) are left
    assert set(stats) == {key for key, _ in llamacpp_kl.REPORTED.values()}


def test_read_tokens_reads_a_base_file(tmp_path):
    tokens = torch.arange(3 * 8).view(3, 8) * 7
    path = tmp_path / "base.kld"
    path.write_bytes(b"_logits_" + struct.pack("<Iii", 8, 100, 3) + tokens.int().numpy().astype("<i4").tobytes()
                     + b"\0" * 64)  # the log-probs that follow are not read
    assert torch.equal(llamacpp_kl.read_tokens(path), tokens)
    assert llamacpp_kl.scored_windows(tokens, bos=1)[:, 0].tolist() == [1, 1, 1]
    with pytest.raises(ValueError):
        (tmp_path / "bad").write_bytes(b"not a base file at all")
        llamacpp_kl.read_tokens(tmp_path / "bad")


def test_sixteen_bit_storage_rounds_to_its_step_above_a_floor_16_nats_down():
    torch.manual_seed(0)
    logprobs = torch.log_softmax(torch.randn(2, 3, 500) * 6, -1)
    stored = llamacpp_kl.sixteen_bit(logprobs)
    top = logprobs.max(-1, keepdim=True).values
    floor = torch.maximum(logprobs.min(-1, keepdim=True).values, top - 16)
    step = (top - floor) / 65535
    above = logprobs > floor
    assert ((stored - logprobs).abs() <= step / 2 + 1e-5)[above].all()
    assert torch.equal(stored[~above], floor.expand_as(stored)[~above])
    # against itself, the stored base's KL is its rounding only
    windows = torch.randint(0, 500, (2, 4))
    kl = llamacpp_kl.sixteen_bit_per_token(stored, logprobs, windows)["kl"]
    assert kl.abs().max() < 1e-3


needs_binary = pytest.mark.skipif(not llamacpp_kl.binary_path().is_file(),
                                  reason="llama-perplexity is not built (bash tools/build_llama_perplexity.sh)")


def _sharper(smol_tiny, out):
    """smol_tiny with its layers' weights at 5x (standard deviation 0.1): Q4_0 then moves its next-token
    distribution by a KL of ~0.02 instead of ~1e-4, a difference worth agreeing on."""
    import shutil

    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(smol_tiny)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if weight.dim() == 2 and "embed" not in name:
                weight.mul_(5)
    model.save_pretrained(out)
    for f in smol_tiny.iterdir():
        if f.name.startswith("tokenizer") or f.name == "quantbench.json":
            shutil.copy(f, out / f.name)
    return out


@needs_binary
def test_our_kl_is_llama_cpps_on_its_tokens(smol_tiny, tmp_path):
    from quantbench.backends import get
    from quantbench.modelio import RunContext, load_causal_lm
    from quantbench.toy import world

    gguf, n_ctx, chunks = get("gguf"), 64, 8
    base = _sharper(smol_tiny, tmp_path / "base")
    folders = {}
    for type_ in ("F32", "Q4_0"):
        folders[type_] = tmp_path / type_
        folders[type_].mkdir()
        gguf.quantize(str(base), folders[type_], {"type": type_, "n_ctx": 256}, RunContext())
    text = tmp_path / "text.txt"
    text.write_text("\n".join(world.documents(world.make_countries(0), 0, 60)))
    kld = tmp_path / "base.kld"
    binary = llamacpp_kl.binary_path()
    llamacpp_kl.base_run(binary, folders["F32"] / "model.gguf", text, kld, n_ctx, chunks, 2)
    theirs = llamacpp_kl.kl_run(binary, folders["Q4_0"] / "model.gguf", kld, n_ctx, 2)

    f32 = gguf.load(str(folders["F32"]), {"n_ctx": 256}, RunContext()).model
    q4 = gguf.load(str(folders["Q4_0"]), {"n_ctx": 256}, RunContext()).model
    torch_base, _ = load_causal_lm(str(base), "cpu", torch.float32)
    vocab = f32._llm._model
    windows = llamacpp_kl.scored_windows(llamacpp_kl.read_tokens(kld), vocab.token_bos() if vocab.add_bos_token()
                                         else None)
    assert windows.shape == (chunks, n_ctx)
    refs = {"stored": (f32, llamacpp_kl.SIXTEEN_BIT), "full": (f32, None), "torch": (torch_base, None),
            "top-64": (torch_base, 64)}
    ours = {label: llamacpp_kl.statistics(values, chunks)
            for (_, label), values in llamacpp_kl.per_token(refs, {"q4": q4}, windows).items()}
    kl = theirs["kl_mean"][0]
    assert kl > 5e-3  # a real difference to agree on
    # the base stored as llama.cpp stores it: its figures, to the digits it prints
    assert abs(ours["stored"]["kl_mean"][0] - kl) < 2e-6 + 1e-4 * kl, (ours["stored"], theirs)
    assert abs(ours["stored"]["same_top"][0] - theirs["same_top"][0]) < 1e-5
    assert abs(ours["stored"]["ln_ppl_ratio"][0] - theirs["ln_ppl_ratio"][0]) < 2e-6
    assert abs(ours["stored"]["dp_rms"][0] - theirs["dp_rms"][0]) < 2e-5
    # our full-vocabulary KL, on either base, within 2% of llama.cpp's; the truncated one a lower bound
    for label in ("full", "torch"):
        assert abs(ours[label]["kl_mean"][0] - kl) < 0.02 * kl, (label, ours[label], theirs)
    assert ours["top-64"]["kl_mean"][0] <= ours["torch"]["kl_mean"][0] + 1e-7
