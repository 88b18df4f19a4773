"""torchao int8 dynamic (Int8DynamicActivationInt8WeightConfig) on SmolLM2 with every int8 product
computed exactly (float64 of the same int8 codes and scales torchao chose), against the float32
reference: which device's figure is the scheme's own arithmetic? (docs/cpu-vs-gpu.md)

Usage: python tools/int8dyn_exact.py BASE_MODEL_DIR REFERENCE_PT [--check]
BASE_MODEL_DIR: results/<model>/models/base; REFERENCE_PT: results/<model>/reference/fp32.pt.
--check: first compare one layer's exact product with torchao's own forward on this machine."""
from __future__ import annotations

import argparse
import json

import torch


def exact_forward(linear):
    """A forward computing torchao's int8 x int8 product exactly, with torchao's own activation
    quantization: the scheme's arithmetic with no kernel in between."""
    from torchao.quantization.quantize_.workflows.int8.int8_tensor import _choose_quant_func_and_quantize_tensor

    w = linear.weight
    w_codes, w_scale = w.qdata.double(), w.scale.double().flatten()

    def forward(x):
        xq = _choose_quant_func_and_quantize_tensor(x, w.act_quant_kwargs, scale=w.act_quant_scale,
                                                    zero_point=w.act_quant_zero_point)
        codes = xq.qdata.double()
        if getattr(xq, "zero_point", None) is not None:
            codes = codes - xq.zero_point.double().reshape(*codes.shape[:-1], 1)
        y = (codes @ w_codes.t()) * xq.scale.double().reshape(*codes.shape[:-1], 1) * w_scale
        if linear.bias is not None:
            y = y + linear.bias.double()
        return y.to(x.dtype)
    return forward


def main():
    from transformers import AutoModelForCausalLM

    from quantbench import distribution
    from quantbench.backends.torchao import quantization_config

    p = argparse.ArgumentParser()
    p.add_argument("base")
    p.add_argument("reference")
    p.add_argument("--check", action="store_true")
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(
        args.base, dtype=torch.float32,
        quantization_config=quantization_config({"scheme": "int8-dynamic", "group_size": -1})).eval()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and hasattr(m.weight, "qdata")]
    if args.check:
        x = torch.randn(2, 16, linears[0].in_features)
        with torch.no_grad():
            ours, theirs = exact_forward(linears[0])(x), linears[0](x)
        print(json.dumps({"check_max_abs_diff": float((ours - theirs).abs().max()),
                          "check_max_abs": float(theirs.abs().max())}))
    for m in linears:
        m.forward = exact_forward(m)
    ref = torch.load(args.reference)
    with torch.no_grad():
        dist = distribution.compare_model(ref["summary"], model, ref["windows"], "cpu", args.batch_size)
    print(json.dumps({"int8_linears": len(linears), **{k: v for k, v in dist.items() if not isinstance(v, list)}}))


if __name__ == "__main__":
    main()
