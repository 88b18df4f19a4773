"""Sensitivity of one quantization method: the KL against the baseline with one group of the method's
quantized layers in the baseline model and the rest full precision, for every group."""
import logging
import time

import torch

from quantbench import cli, sensitivity
from quantbench.loading import load_model
from quantbench.modelio import RunContext
from quantbench.records import Recorder

p = cli.parser(__doc__)
p.add_argument("--base", required=True, help="the baseline's model folder")
p.add_argument("--model", required=True, help="the method's quantized model folder")
p.add_argument("--reference", required=True, help="the baseline's reference log-probs (.pt)")
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
ctx = RunContext(device=params["device"], dtype_name=params["dtype"], seed=params["seed"])
spec = params["sensitivity"]
rec = Recorder("sensitivity", params["variant"], params, ctx.device, ctx.seed)
t0 = time.perf_counter()
base, _, _ = load_model(args.base, ctx)
quantized, _, info = load_model(args.model, ctx)
reference, windows = sensitivity.reference_slice(torch.load(args.reference), spec["tokens"])
units = sensitivity.linear_units(base)
group_map = sensitivity.groups(units, spec["groups"], spec.get("kinds"))
logging.info("%d groups of %d layers, %d tokens", len(group_map), len(units), windows.numel())


def progress(done, total, row):
    logging.info("[%d/%d] %s: KL %.5f ± %.5f", done, total, row["group"], row["kl_mean"], row["kl_mean_ci95"])


rows = sensitivity.measure(base, quantized, group_map, reference, windows, ctx.device,
                           params["batch_size"], progress)
rec.record["kernel"] = info["kernel"]
rec.record["metrics"] = {"groups": rows, "tokens": int(windows.numel()), "sensitivity_s": time.perf_counter() - t0}
rec.write(args.record)
