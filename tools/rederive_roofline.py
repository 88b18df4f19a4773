"""Re-derive the bytes a decode step reads, and the roofline share from them, in benchmark records
written before commit 'decode_weights_mb counts quantized tensor subclasses and HQQ's meta'.

Until then `benchmark.decode_weights_mb` counted a torchao weight (a tensor subclass whose bytes
live in inner tensors) as no bytes, and HQQ's scales and zero points (kept in its layers' meta
dicts) not at all, so those records understate `decode_weights_read_mb` and the roofline share.
The measured fields (step times, bandwidth, memory) are right; only the derived ones change:

  decode_weights_read_mb = weights_memory_mb - untied input embedding table
      (weights_memory_mb was always counted through the inner tensors and the meta dicts; a step
      gathers one row of an untied input table, a tied one is read whole as the output head)
  decode_bytes_per_step_mb = decode_weights_read_mb + its cell's KV-cache bytes (unchanged)
  decode_roofline_pct scaled by the new bytes over the old (same step time, same bandwidth)

The record keeps the old values under "rederived". Only torchao and HQQ records apply: other
backends' weights were counted right.

Usage: python tools/rederive_roofline.py --untied-embedding-mb MB RECORD.json ...
  MB: vocab_size * hidden_size * bytes per value of the unquantized table (0 for a tied table),
  e.g. Llama-2-7b in 16 bits: 32000 * 4096 * 2 / 2**20 = 250.0; SmolLM2 (tied): 0.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

BACKENDS = ("torchao", "hqq")


def rederive(record: dict, untied_embedding_mb: float) -> dict | None:
    """The record with its derived decode fields recomputed, or None if it does not apply."""
    if "rederived" in record:
        return None
    backend = str(record.get("kernel", "")).split("-")[0]
    if backend not in BACKENDS:
        return None
    metrics = record["metrics"]
    old = metrics["decode_weights_read_mb"]
    new = metrics["weights_memory_mb"] - untied_embedding_mb
    if new <= old:
        return None
    metrics["decode_weights_read_mb"] = new
    for cell in record["cells"]:
        if cell.get("decode_bytes_per_step_mb") is None:
            continue
        kv = cell["decode_bytes_per_step_mb"] - old
        scale = (new + kv) / cell["decode_bytes_per_step_mb"]
        cell["decode_bytes_per_step_mb"] = new + kv
        if cell.get("decode_roofline_pct") is not None:
            cell["decode_roofline_pct"] *= scale
    record["rederived"] = {
        "by": "tools/rederive_roofline.py", "decode_weights_read_mb_was": old,
        "untied_embedding_mb": untied_embedding_mb,
        "why": "decode_weights_mb counted torchao tensor subclasses as no bytes and missed HQQ's meta"}
    return record


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--untied-embedding-mb", type=float, required=True)
    ap.add_argument("records", nargs="+", type=Path)
    args = ap.parse_args(argv)
    for path in args.records:
        record = rederive(json.loads(path.read_text()), args.untied_embedding_mb)
        if record is None:
            print(f"{path}: unchanged")
            continue
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"{path}: decode_weights_read_mb {record['rederived']['decode_weights_read_mb_was']:.1f} -> "
              f"{record['metrics']['decode_weights_read_mb']:.1f}")


if __name__ == "__main__":
    main()
