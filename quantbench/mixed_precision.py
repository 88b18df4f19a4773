"""Which linear layers get more bits: a measured allocation under a bits-per-weight budget, or
llama.cpp's hand-made k-quant placement, as a map module name -> bits.

Measured: every allocation unit (a block, a projection kind or a cell; quantbench.sensitivity) starts
at the low bit width; units move to the high one in order of KL saved per extra stored bit, as long
as the average over all block weights stays within the budget (a greedy knapsack: a unit that does
not fit is passed over and smaller ones after it may still fit). The KL of a unit at each width
comes from the sensitivity records: the KL with that unit alone quantized.

k-quant: llama.cpp's Q4_K_M gives attention V and FFN down more bits (Q6_K against Q4_K) in the
blocks its `use_more_bits` picks: the first and last eighth of the blocks and every third block in
between (src/llama-quant.cpp, llama_tensor_get_type, in llama-cpp-python 0.3.36's vendored
llama.cpp). Here the same placement is given to the high bit width of another quantizer, so that the
two policies can be compared on one quantizer at one size.
"""
from __future__ import annotations

import re

from quantbench.layer_groups import group_name, units_of

KQUANT_KINDS = ("v_proj", "down_proj")


def kquant_more_bits(block: int, n_blocks: int) -> bool:
    """llama.cpp's use_more_bits (integer arithmetic as in C++; Python's % of a negative number
    differs from C's, hence the explicit sign handling)."""
    eighth = n_blocks // 8
    d = block - eighth
    rem = d - int(d / 3) * 3  # C's truncating remainder
    return block < eighth or block >= 7 * n_blocks // 8 or rem == 2


def kquant_allocation(weights: dict[str, int], low: int, high: int) -> dict[str, int]:
    units = units_of(weights)
    n_blocks = max(b for b, _ in units.values()) + 1
    return {name: high if kind in KQUANT_KINDS and kquant_more_bits(block, n_blocks) else low
            for name, (block, kind) in units.items()}


def average_bits(allocation: dict[str, int], weights: dict[str, int], cost) -> float:
    """Bits per block weight an allocation stores; cost(name, bits): bits per weight of that layer at
    that width, scales and indices included (stored_bits.gptq_layer_bits)."""
    total = sum(weights[n] for n in allocation)
    return sum(cost(n, b) * weights[n] for n, b in allocation.items()) / total


def measured_allocation(weights: dict[str, int], kl_low: dict[str, float], kl_high: dict[str, float],
                        family: str, low: int, high: int, budget_bits: float, cost) -> dict:
    """Greedy by KL saved per extra bit. kl_low/kl_high: group name -> KL of that unit alone at the
    low/high width (sensitivity rows of `family`); cost(name, bits): stored bits per weight of a layer.
    Returns {allocation, upgraded (units in the order bought), average_bits}."""
    members: dict[str, list[str]] = {}
    for name, (block, kind) in units_of(weights).items():
        members.setdefault(group_name(family, block, kind), []).append(name)
    missing = sorted(u for u in members if u not in kl_low or u not in kl_high)
    if missing:
        raise ValueError(f"sensitivity records lack {len(missing)} {family} groups, e.g. {missing[:3]}")
    allocation = {n: low for names in members.values() for n in names}
    total = sum(weights[n] for n in allocation)
    floor = average_bits(allocation, weights, cost)
    if budget_bits < floor:
        raise ValueError(f"budget {budget_bits:.4f} bits/weight is below what every layer at {low} bits stores "
                         f"({floor:.4f})")
    spare = (budget_bits - floor) * total  # bits beyond all-low

    def extra_bits(unit):
        return sum((cost(n, high) - cost(n, low)) * weights[n] for n in members[unit])

    def saving_per_bit(unit):
        return (kl_low[unit] - kl_high[unit]) / extra_bits(unit)
    order = []
    for unit in sorted(members, key=saving_per_bit, reverse=True):
        extra = extra_bits(unit)
        if kl_low[unit] <= kl_high[unit] or extra > spare * (1 + 1e-12):
            continue
        spare -= extra
        order.append(unit)
        for n in members[unit]:
            allocation[n] = high
    return {"allocation": allocation, "upgraded": order,
            "average_bits": average_bits(allocation, weights, cost)}


def gptq_dynamic(allocation: dict[str, int], low: int) -> dict[str, dict]:
    """GPTQModel's per-module overrides (QuantizeConfig.dynamic: a regex on the module's full name ->
    the settings that differ) for every module not at the low width."""
    return {f"+:^{re.escape(name)}$": {"bits": bits} for name, bits in sorted(allocation.items()) if bits != low}


def plan(params: dict, shapes: dict[str, tuple[int, int]], sensitivity: list[dict], layer_bits,
         size_of: dict | None = None) -> dict:
    """A GPTQ method's `mix:` turned into an allocation for this model's layers (shapes: module name ->
    (out, in) features), with the figures the quantize record keeps. layer_bits(bits, group_size,
    out_features): stored bits per weight; size_of: the quantize record of the method whose measured
    size is the budget (budget_bits names a method)."""
    mix, low = params["mix"], params["bits"]
    high, rule = mix["high_bits"], mix.get("rule", "sensitivity")
    weights = {n: r * c for n, (r, c) in shapes.items()}

    def cost(name, bits):
        return layer_bits(bits, params["group_size"], shapes[name][0])
    kquant = kquant_allocation(weights, low, high)
    if rule == "kquant":
        return {"rule": rule, "allocation": kquant, "average_bits": average_bits(kquant, weights, cost)}
    budget = mix["budget_bits"]
    if budget == "kquant":
        budget = average_bits(kquant, weights, cost)
    elif isinstance(budget, str):  # a method's measured size
        budget = size_of["metrics"]["bits_per_weight"]
    family = mix.get("unit", "cell")
    by_bits = {r["params"]["method"]["params"]["bits"]: r for r in sensitivity}
    missing = [b for b in (low, high) if b not in by_bits]
    if missing:
        raise ValueError(f"no sensitivity record at {missing} bits (records: {sorted(by_bits)})")

    def kl(bits):
        return {row["group"]: row["kl_mean"] for row in by_bits[bits]["metrics"]["groups"] if row["family"] == family}
    out = measured_allocation(weights, kl(low), kl(high), family, low, high, budget, cost)
    return {"rule": rule, "unit": family, "budget_bits": budget, "budget_from": mix["budget_bits"],
            "sensitivity_from": {b: by_bits[b]["subject"] for b in (low, high)}, **out}
