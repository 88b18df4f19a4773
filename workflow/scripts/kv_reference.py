"""The baseline's next-token summaries on long held-out windows, fed in chunks through the plain KV cache:
what every (weights, KV cache) pair of the kv_cache stage is compared against."""
import torch

from quantbench import cli, kv_quality
from quantbench.atomic import atomic_file
from quantbench.loading import load_model
from quantbench.modelio import RunContext

p = cli.parser(__doc__)
p.add_argument("--model", required=True)
p.add_argument("--out", required=True)
args = p.parse_args()
params = cli.setup(args)
kv = params["kv_cache"]
ctx = RunContext(device=params["device"], dtype_name=params["dtype"], seed=params["seed"])
model, tokenizer, _ = load_model(args.model, ctx)
ids = tokenizer(kv_quality.text(kv["text"]), add_special_tokens=False).input_ids
windows = kv_quality.windows(ids, kv["contexts"], kv["windows"])
contexts = {}
for length, w in windows.items():
    parts = [kv_quality.reference_pass(model, w[i], kv["chunk"], kv["top_k"]) for i in range(len(w))]
    contexts[length] = {"windows": w, "summary": {k: torch.stack([p[k] for p in parts]) for k in parts[0]}}
    print(f"reference: {len(w)} windows of {length} tokens", flush=True)
with atomic_file(args.out) as tmp:
    torch.save({"contexts": contexts, "variant": params["variant"], "top_k": kv["top_k"], "text": kv["text"],
                "text_tokens": len(ids), "chunk": kv["chunk"]}, tmp)
