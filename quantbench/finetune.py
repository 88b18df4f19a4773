"""LoRA fine-tuning with PEFT on any base: QLoRA on bitsandbytes, LoRA on GPTQ, plain LoRA on the
unquantized model. Records per-step time, peak memory and the loss curve."""
from __future__ import annotations

import logging

import torch
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from tqdm import tqdm

from quantbench import memory, timing
from quantbench.backends import UNQUANTIZED

log = logging.getLogger(__name__)


def tokenize(tokenizer, texts: list[str], seq_len: int) -> dict[str, torch.Tensor]:
    tokenizer.padding_side = "right"  # training pads on the right; labels mask the padding
    enc = tokenizer([t + tokenizer.eos_token for t in texts], max_length=seq_len, truncation=True,
                    padding="max_length", return_tensors="pt")
    tokenizer.padding_side = "left"
    labels = enc.input_ids.clone()
    labels[enc.attention_mask == 0] = -100
    return {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask, "labels": labels}


def add_lora(model, backend: str, lora: dict, gradient_checkpointing: bool):
    if backend != UNQUANTIZED:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable()
    config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                        target_modules=lora["target_modules"], task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def train(model, tokenizer, texts: list[str], backend: str, params: dict, device: str, seed: int):
    """Train a LoRA adapter; returns (peft_model, stats)."""
    model = add_lora(model, backend, params["lora"], params.get("gradient_checkpointing", False))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    data = tokenize(tokenizer, texts, params["seq_len"])
    data = {k: v.to(device) for k, v in data.items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=params["learning_rate"])
    g = torch.Generator().manual_seed(seed)
    n, bs = data["input_ids"].shape[0], params["batch_size"]
    model.train()
    losses, step_s = [], []
    with memory.PeakMemory(device) as peak:
        for _ in (bar := tqdm(range(params["steps"]), desc="LoRA fine-tune", mininterval=2)):
            idx = torch.randint(0, n, (bs,), generator=g)
            batch = {k: v[idx.to(v.device)] for k, v in data.items()}

            def step():
                out = model(**batch)
                out.loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                losses.append(out.loss.item())

            step_s.append(timing.time_call(step, device))
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    model.eval()
    warm = step_s[min(2, len(step_s) - 1):]  # the first steps include lazy initialisation
    summary = timing.summarize(warm)
    tokens = bs * params["seq_len"]
    stats = {
        "finetune_step_ms": summary["median_s"] * 1e3,
        "finetune_step_iqr_over_median": summary["iqr_over_median"],
        "finetune_tokens_per_s": tokens / summary["median_s"],
        "finetune_peak_memory_mb": peak.result["peak_memory_mb"],
        "trainable_parameters": trainable, "total_parameters": total,
        "loss_first": losses[0], "loss_last": sum(losses[-5:]) / len(losses[-5:]),
        "loss_curve": losses, "step_ms": [s * 1e3 for s in step_s],
    }
    return model, stats
