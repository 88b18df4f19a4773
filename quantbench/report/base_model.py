"""What the report says about the base model itself: where its weights came from, and what that
means for the comparison (a base dequantized from a quantized GGUF file is not the original model)."""
from __future__ import annotations

# GGUF block formats: block size and what one block stores (llama.cpp's ggml-common.h)
GGUF_FORMATS = {
    "Q4_0": "4-bit, blocks of 32 weights with one scale",
    "Q4_1": "4-bit, blocks of 32 weights with a scale and a minimum",
    "Q5_0": "5-bit, blocks of 32 weights with one scale",
    "Q5_1": "5-bit, blocks of 32 weights with a scale and a minimum",
    "Q8_0": "8-bit, blocks of 32 weights with one scale",
}


def section(records: list[dict]) -> str:
    build = next((r for r in records if r.get("stage") == "build_model"), None)
    metrics = (build or {}).get("metrics", {})
    types = metrics.get("gguf_tensor_types")
    if not types:
        return ""
    quantized = {t: n for t, n in types.items() if t not in ("F32", "F16", "BF16")}
    main = max(quantized, key=quantized.get) if quantized else None
    lines = ["## The base model\n",
             f"Dequantized from the GGUF file `{metrics.get('gguf_file', '?').split('/')[-1]}` "
             f"({metrics.get('gguf_name')}, {metrics.get('n_parameters', 0) / 1e6:.1f} M parameters; "
             "tensor types " + ", ".join(f"{n} × {t}" for t, n in sorted(types.items())) + ") into float32.\n"]
    if main:
        lines.append(
            f"> **This base is not the original model.** Its weights lie on {main}'s grid "
            f"({GGUF_FORMATS.get(main, 'a quantized format')}); the original checkpoint is not available offline. "
            "Every figure below measures a scheme against this dequantized base. A scheme whose grid lines up "
            f"with {main}'s blocks (a group size that is a multiple of 32, 4 bits or more, with an offset) can "
            "re-represent these weights almost exactly and look nearly lossless here, while on the original "
            "weights it would not; schemes are compared fairly with each other, but their absolute loss is "
            "a lower bound of what they would lose on the original model.\n")
    return "\n".join(lines)
