"""Next-token log-probs (top-k summary) of a reference variant on fixed held-out tokens, for KL and agreement."""
import torch

from quantbench import cli, distribution
from quantbench.atomic import atomic_file
from quantbench.data import load_texts
from quantbench.loading import load_model
from quantbench.modelio import RunContext

p = cli.parser(__doc__)
p.add_argument("--model", required=True)
p.add_argument("--adapter")
p.add_argument("--heldout", required=True)
p.add_argument("--out", required=True)
args = p.parse_args()
params = cli.setup(args)
ctx = RunContext(device=params["device"], dtype_name=params["dtype"], seed=params["seed"])
model, tokenizer, _ = load_model(args.model, ctx, adapter=args.adapter)
ev = params["evaluate"]
texts = load_texts(params.get("heldout_dataset") or args.heldout)
windows = distribution.token_windows(tokenizer, texts, ev["distribution_tokens"], ev["distribution_window"])
summary = distribution.reference_summary(model, windows, ctx.device, ev["batch_size"], ev.get("distribution_top_k"))
with atomic_file(args.out) as tmp:
    torch.save({"windows": windows, "summary": summary, "variant": params["variant"],
                "top_k": ev.get("distribution_top_k")}, tmp)
