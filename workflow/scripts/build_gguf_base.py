"""Build the base model from a GGUF file (source: gguf): dequantize it into a transformers folder."""
from quantbench import cli, gguf_source
from quantbench.atomic import atomic_dir
from quantbench.modelio import write_meta
from quantbench.records import Recorder

p = cli.parser(__doc__)
p.add_argument("--gguf", required=True)
p.add_argument("--out", required=True)
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
rec = Recorder("build_model", "base", params, "cpu", params["seed"])
with atomic_dir(args.out) as tmp:
    stats = gguf_source.to_base_folder(args.gguf, tmp, params["dtype"])
    write_meta(tmp, {"method": "base", "backend": "none", "params": {"dtype": params["dtype"]},
                     "source": "gguf", "gguf_file": args.gguf, "gguf_tensor_types": stats["gguf_tensor_types"]})
rec.record["metrics"] = stats
rec.write(args.record)
