"""Build the base model from a real architecture with random weights (source: random)."""
import torch

from quantbench import cli, random_model
from quantbench.atomic import atomic_dir
from quantbench.modelio import torch_dtype, write_meta
from quantbench.records import Recorder
from quantbench.toy.data import read_texts

p = cli.parser(__doc__)
p.add_argument("--architecture", required=True, help="config.json of the architecture")
p.add_argument("--corpus", required=True, help="JSON lines texts the tokenizer is trained on")
p.add_argument("--out", required=True)
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
device = params["device"] if params["device"] != "cuda" or torch.cuda.is_available() else "cpu"
rec = Recorder("build_model", "base", params, device, params["seed"])
config = random_model.load_architecture(args.architecture, params["model"].get("num_hidden_layers"))
with atomic_dir(args.out) as tmp:
    stats = random_model.build(tmp, config, read_texts(args.corpus), device, torch_dtype(params["dtype"]),
                               params["seed"])
    write_meta(tmp, {"method": "base", "backend": "none", "params": {"dtype": params["dtype"]},
                     "source": "random", "architecture": args.architecture,
                     "num_hidden_layers": config.num_hidden_layers})
rec.record["metrics"] = stats
rec.write(args.record)
