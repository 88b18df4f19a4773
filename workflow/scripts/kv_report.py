"""The KV-cache section of the report: tables per context length and position bucket, the cost table and
the figure of KL by position bucket, from the kv_evaluate records."""
import argparse
import os

from quantbench import kv_config, kv_report
from quantbench.atomic import atomic_file, read_json

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--records", nargs="+", required=True)
p.add_argument("--baseline", required=True)
p.add_argument("--out", required=True)
p.add_argument("--figure", required=True)
args = p.parse_args()
records = {}
for path in args.records:
    rec = read_json(path)
    records[rec["subject"]] = rec
contexts = next(iter(records.values()))["params"]["kv_cache"]["contexts"]
os.makedirs(os.path.dirname(os.path.abspath(args.figure)), exist_ok=True)
kv_report.figure(records, contexts, args.figure)
text = kv_report.markdown(records, args.baseline, contexts, os.path.relpath(args.figure, os.path.dirname(args.out)))
with atomic_file(args.out) as tmp:
    tmp.write_text(text + "\n")
print(f"{len(records)} rows ({', '.join(kv_config.split(n)[1] or 'plain' for n in records)})")
