"""Write the example sentences of a WordNet data file as JSON lines of {"text": ...}."""
import argparse
import json

from quantbench.atomic import atomic_file
from quantbench.encoder.wordnet_examples import examples

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--wordnet", required=True, help="a WordNet data file (data.noun, ...), path or pkg:")
p.add_argument("--out", required=True)
args = p.parse_args()
texts = examples(args.wordnet)
with atomic_file(args.out) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in texts)
print(f"{len(texts)} example sentences from {args.wordnet}")
