"""Build an encoder of another modality (vision, audio) from a transformers architecture file, with
random weights, for the encoder workflow's runs-or-refuses probe."""
from quantbench import cli
from quantbench.atomic import atomic_dir
from quantbench.encoder import random_encoder
from quantbench.modelio import write_meta
from quantbench.records import Recorder

p = cli.parser(__doc__)
p.add_argument("--architecture", required=True, help="config.json of the architecture (model_type and sizes)")
p.add_argument("--out", required=True)
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
rec = Recorder("build_model", params["encoder"], params, "cpu", params["seed"])
with atomic_dir(args.out) as tmp:
    stats = random_encoder.build(tmp, args.architecture, params["seed"])
    write_meta(tmp, {"method": "base", "backend": "none", "params": {"dtype": "float32"}, "source": "random",
                     "architecture": args.architecture, "kind": "encoder", "modality": stats["modality"]})
rec.record["metrics"] = stats
rec.write(args.record)
print(f"{params['encoder']}: random {stats['architecture']} ({stats['modality']}), {stats['parameters']} parameters")
