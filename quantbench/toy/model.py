"""Build the toy Llama: a byte-level BPE tokenizer and a small Llama trained briefly on the toy corpus."""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from quantbench.atomic import atomic_dir

log = logging.getLogger(__name__)
SPECIAL_TOKENS = ["<s>", "</s>", "<pad>"]


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", padding_side="left")


def _packed_batches(token_ids: list[int], batch_size: int, seq_len: int, steps: int, seed: int):
    data = torch.tensor(token_ids)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        starts = torch.randint(0, len(data) - seq_len - 1, (batch_size,), generator=g)
        yield torch.stack([data[s:s + seq_len] for s in starts])


def build(texts: list[str], out_dir: str | Path, params: dict, seed: int) -> dict:
    """Train tokenizer and model; write a Hugging Face model folder. Returns training stats."""
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(texts, params["vocab_size"])
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=params["hidden_size"],
        intermediate_size=params["intermediate_size"], num_hidden_layers=params["num_hidden_layers"],
        num_attention_heads=params["num_attention_heads"],
        num_key_value_heads=params["num_attention_heads"],
        max_position_embeddings=params["max_position_embeddings"],
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("toy Llama: %.2fM parameters, vocab %d", n_params / 1e6, len(tokenizer))

    ids: list[int] = []
    for t in texts:
        ids.extend(tokenizer(t).input_ids + [tokenizer.eos_token_id])
    steps, lr = params["train_steps"], params["learning_rate"]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    losses = []
    t0 = time.perf_counter()
    batches = _packed_batches(ids, params["train_batch_size"], params["train_seq_len"], steps, seed)
    for batch in (bar := tqdm(batches, total=steps, desc="train toy model", mininterval=2)):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    model.eval()
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return {"parameters": n_params, "vocab_size": len(tokenizer), "corpus_tokens": len(ids),
            "train_s": time.perf_counter() - t0, "final_loss": sum(losses[-20:]) / len(losses[-20:]),
            "loss_curve": losses[:: max(1, steps // 100)]}
