"""Write the WordNet data folder: calibration, held-out, fine-tuning pairs and the two tasks."""
import json
from pathlib import Path

from quantbench import cli, wordnet

p = cli.parser(__doc__)
p.add_argument("--wordnet", required=True, help="folder of WordNet's data.noun, data.verb, ...")
p.add_argument("--tokenizer", required=True)
p.add_argument("--out", required=True)
args = p.parse_args()
params = cli.setup(args)
options = params.get("wordnet") or {}
counts = wordnet.build(args.wordnet, args.tokenizer, args.out, params["seed"],
                       task_items=options.get("task_items", 1200))
(Path(args.out) / "counts.json").write_text(json.dumps(counts, indent=2))
print(json.dumps(counts))
