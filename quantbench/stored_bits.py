"""What a model folder stores for its decoder blocks' linear layers, read from the safetensors
headers (no weights loaded): the weights each layer holds, and the bits per weight a GPTQ checkpoint
spends on them (packed weights, zero points, scales, act-order indices), the counterpart of what
quantbench.llamacpp measures in a GGUF file."""
from __future__ import annotations

import json
import struct
from pathlib import Path

from quantbench.layer_groups import units_of

BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
GPTQ_TENSORS = ("qweight", "qzeros", "scales", "g_idx")


def _headers(folder) -> dict[str, dict]:
    out = {}
    for f in sorted(Path(folder).glob("*.safetensors")):
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            out.update({k: v for k, v in json.loads(fh.read(n)).items() if k != "__metadata__"})
    if not out:
        raise FileNotFoundError(f"{folder}: no .safetensors files")
    return out


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def block_linear_shapes(folder) -> dict[str, tuple[int, int]]:
    """module name -> (out, in) features, for every 2-D `.weight` inside a decoder block of a
    full-precision folder."""
    shapes = {k.removesuffix(".weight"): tuple(v["shape"]) for k, v in _headers(folder).items()
              if k.endswith(".weight") and len(v["shape"]) == 2}
    return {k: shapes[k] for k in units_of(shapes)}


def block_linear_weights(folder) -> dict[str, int]:
    return {k: rows * cols for k, (rows, cols) in block_linear_shapes(folder).items()}


def gptq_layer_bits(bits: int, group_size: int, out_features: int) -> float:
    """Bits per weight a GPTQModel checkpoint stores for one layer: the packed codes; per group and
    output column a 16-bit scale and a zero point at `bits` bits; one 32-bit act-order index per
    input feature (stored with act-order off too), i.e. 32 / out_features per weight."""
    return bits + (16 + bits) / group_size + 32 / out_features


def gptq_bits_per_weight(folder, weights: dict[str, int]) -> float:
    """Bits the GPTQ checkpoint at `folder` stores per weight of the layers in `weights`."""
    headers = _headers(folder)
    stored = 0
    for name in weights:
        parts = [headers.get(f"{name}.{t}") for t in GPTQ_TENSORS]
        if parts[0] is None:
            raise KeyError(f"{folder}: {name} has no GPTQ qweight (left unquantized?)")
        stored += sum(BYTES[p["dtype"]] * _numel(p["shape"]) for p in parts if p)
    return 8 * stored / sum(weights.values())
