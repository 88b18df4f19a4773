"""The encoder report: a table per modality and the verdict on the modality claims, from the records."""
import argparse
import json
from pathlib import Path

import pandas as pd

from quantbench.atomic import atomic_file
from quantbench.encoder import claims, report
from quantbench.records import load_records

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", type=json.loads, required=True)
p.add_argument("--records", nargs="+", required=True, help="the text encoder's records/encoder/*.json")
p.add_argument("--probes", nargs="*", default=[], help="the other modalities' random/*/records/*.json")
p.add_argument("--out", required=True, help="report folder")
args = p.parse_args()
params = args.params
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
df = report.table(load_records(args.records))
probes = report.probe_table(load_records(args.probes))
text = {"name": params["title"], "architecture": params["setup"]["model_type"]}
verdicts = claims.verdicts(df, params["min_cosine"], probes, text)
for name, table in (("encoder.csv", df), ("encoder_modalities.csv", probes), ("encoder_claims.csv",
                                                                                pd.DataFrame(verdicts))):
    with atomic_file(out / name) as tmp:
        table.to_csv(tmp, index=False)
text_md = report.markdown(params["title"], df, verdicts, params["setup"], params["skipped"], probes)
with atomic_file(out / "encoder.md") as tmp:
    tmp.write_text(text_md)
print(text_md)
