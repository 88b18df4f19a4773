"""A real architecture with random weights: for speed and memory, which do not depend on the
weights' values, where the real checkpoint cannot be had (no hub) or is not worth the download.

The tokenizer is built locally (byte-level BPE trained on the local corpus, then padded with
placeholder tokens) so that its size is exactly the architecture's vocabulary; the ids of <unk>,
<s> and </s> are Llama's (0, 1, 2). Quality numbers from such a model mean nothing: records and
reports mark its rows as random_weights.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]


def load_architecture(path: str | Path, num_hidden_layers: int | None = None):
    """A transformers config from a config.json, optionally truncated to its first layers."""
    from transformers import AutoConfig

    with open(path) as f:
        arch = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    if num_hidden_layers is not None:
        if num_hidden_layers > arch["num_hidden_layers"]:
            raise ValueError(f"num_hidden_layers {num_hidden_layers} exceeds the architecture's "
                             f"{arch['num_hidden_layers']}")
        arch["num_hidden_layers"] = num_hidden_layers
    model_type = arch.pop("model_type")
    arch.pop("torch_dtype", None)
    return AutoConfig.for_model(model_type, **arch)


def build_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE trained on `texts`, padded with <extra_i> tokens to exactly vocab_size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", padding_side="left")
    missing = vocab_size - len(fast)
    if missing < 0:
        raise ValueError(f"tokenizer has {len(fast)} tokens, more than the vocabulary {vocab_size}")
    fast.add_tokens([f"<extra_{i}>" for i in range(missing)])
    assert len(fast) == vocab_size, (len(fast), vocab_size)
    assert [fast.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [0, 1, 2]
    return fast


def build(out_dir: str | Path, config, texts: list[str], device: str, dtype: torch.dtype, seed: int) -> dict:
    """Write a model folder: random-initialised weights (on `device`, in `dtype`) and a tokenizer."""
    from transformers import AutoModelForCausalLM

    t0 = time.perf_counter()
    tokenizer = build_tokenizer(texts, config.vocab_size)
    tokenizer_s = time.perf_counter() - t0
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    # Initialised where it runs and in its final dtype: a 13B model initialises in seconds on a GPU,
    # minutes in fp32 on a CPU.
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    if device == "cuda":
        torch.cuda.synchronize()
    init_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    log.info("random %s: %d layers, %.2fB parameters, initialised in %.1f s on %s",
             config.model_type, config.num_hidden_layers, n_params / 1e9, init_s, device)
    t0 = time.perf_counter()
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    save_s = time.perf_counter() - t0
    return {"parameters": n_params, "num_hidden_layers": config.num_hidden_layers,
            "vocab_size": len(tokenizer), "tokenizer_s": tokenizer_s, "init_s": init_s, "save_s": save_s}
