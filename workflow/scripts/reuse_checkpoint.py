"""Give a method the checkpoint another method's quantize job wrote (same stored parameters; they
differ only in a load-time choice such as the GPTQ kernel): hard links, or copies across file
systems, plus its own quantbench.json so the benchmark loads it with its own kernel."""
import logging

from quantbench import cli
from quantbench.atomic import atomic_dir, read_json
from quantbench.modelio import link_tree, read_meta, write_meta
from quantbench.records import Recorder

p = cli.parser(__doc__)
p.add_argument("--src", required=True, help="the model folder the owner's quantize job wrote")
p.add_argument("--src-record", required=True, help="the owner's quantize record")
p.add_argument("--out", required=True)
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
method = params["method"]
owner = read_meta(args.src)
logging.info("%s reuses the checkpoint of %s (%s)", method["name"], owner["method"], args.src)
with atomic_dir(args.out) as tmp:
    link_tree(args.src, tmp)
    write_meta(tmp, {**owner, "method": method["name"], "params": method["params"],
                     "checkpoint_of": owner["method"]})
owner_record = read_json(args.src_record)
rec = Recorder("quantize", params["variant"], params, params["device"], params["seed"])
# The quantize time and size are the owner's: this job quantized nothing.
rec.record["metrics"] = {**owner_record["metrics"], "checkpoint_of": owner["method"]}
rec.write(args.record)
