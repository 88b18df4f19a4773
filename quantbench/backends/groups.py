"""The group-size rule shared by grouped weight quantizers (GPTQ, HQQ, torchao int4): a group of
weights shares one scale, and a group must not straddle two rows, so its size divides the input
width of every quantized linear layer."""
from __future__ import annotations


def group_size_problem(g: int, model_dims: list[int] | None, per_row: bool = True,
                       multiple_of: int = 1, choices: list[int] | None = None) -> str | None:
    """Why group size `g` cannot be used, as '<value> ...; allowed: ...', or None.

    per_row: -1 (one group per row) is allowed; multiple_of: the library packs groups in such
    steps; choices: the library's only sizes. model_dims None: widths unknown, not checked."""
    whole = " or -1" if per_row else ""
    if g == -1 and per_row:
        return None
    if choices is not None and g not in choices:
        return f"{g} is not a group size this scheme supports; allowed: {', '.join(map(str, choices))}"
    if g <= 0:
        return f"{g} must be a positive divisor of the layer widths{whole}"
    if g % multiple_of:
        return (f"{g} is not a multiple of {multiple_of}; allowed: multiples of {multiple_of} dividing the layer "
                f"widths{whole}")
    bad = sorted({d for d in model_dims or [] if d % g})
    if bad:
        return (f"{g} does not divide the layer width(s) {bad}; choose a divisor of "
                f"{', '.join(map(str, sorted(set(model_dims))))}{whole}")
    return None


def bits_with_group_scales(bits: int, group_size: int) -> float:
    """Storage per weight of a GPTQModel-format layer (GPTQ and AWQ): per group of g weights, one
    16-bit scale and one zero point packed at `bits` bits (AWQ stores it for zero_point false too,
    as the grid's midpoint); per row (-1) the scales are negligible."""
    return bits + (16 + bits) / group_size if group_size > 0 else float(bits)
