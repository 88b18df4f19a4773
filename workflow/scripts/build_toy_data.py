"""Write the toy default's local data (corpus, calibration, fine-tuning pairs, held-out text, tasks)."""
from quantbench import cli
from quantbench.toy import data

p = cli.parser(__doc__)
p.add_argument("--out", required=True)
args = p.parse_args()
params = cli.setup(args)
data.build(args.out, seed=params["seed"])
