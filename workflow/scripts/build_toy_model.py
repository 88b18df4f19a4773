"""Train the toy Llama (tokenizer and model) on the toy corpus and save it as the base model."""
from quantbench import cli
from quantbench.atomic import atomic_dir
from quantbench.modelio import write_meta
from quantbench.records import Recorder
from quantbench.toy import data, model

p = cli.parser(__doc__)
p.add_argument("--data", required=True)
p.add_argument("--out", required=True)
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
rec = Recorder("build_model", "base", params, "cpu", params["seed"])
# The folder appears under its final name only with its quantbench.json inside (model.build's own
# atomic write then lands inside this one).
with atomic_dir(args.out) as tmp:
    stats = model.build(data.read_texts(f"{args.data}/corpus.jsonl"), tmp, params["toy"], params["seed"])
    write_meta(tmp, {"method": "base", "backend": "none", "params": {"dtype": "float32"}, "source": "toy"})
rec.record["metrics"] = stats
rec.write(args.record)
