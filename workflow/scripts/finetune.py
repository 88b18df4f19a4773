"""Train a LoRA adapter on a (quantized) model folder; record step time, peak memory, loss curve."""
from quantbench import cli, finetune
from quantbench.atomic import atomic_dir
from quantbench.data import load_texts
from quantbench.loading import load_model
from quantbench.modelio import RunContext
from quantbench.records import Recorder

p = cli.parser(__doc__)
p.add_argument("--model", required=True)
p.add_argument("--data", required=True, help="instruction/response pairs (JSON lines) or dataset spec")
p.add_argument("--out", required=True)
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
ctx = RunContext(device=params["device"], dtype_name=params["dtype"], seed=params["seed"])
rec = Recorder("finetune", params["variant"], params, ctx.device, ctx.seed)
model, tokenizer, info = load_model(args.model, ctx, trainable=True)
texts = load_texts(params.get("dataset") or args.data, params.get("samples"), kind="instruction")
peft_model, stats = finetune.train(model, tokenizer, texts, info["backend"], params["finetune"],
                                   ctx.device, ctx.seed)
with atomic_dir(args.out) as tmp:
    peft_model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
rec.record["metrics"] = stats
rec.record["kernel"] = info["kernel"]
rec.write(args.record)
