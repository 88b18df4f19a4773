"""The encoder report: a table per method and the verdict on the modality claims, from the records."""
import argparse
import json
from pathlib import Path

from quantbench.atomic import atomic_file
from quantbench.encoder import report
from quantbench.records import load_records

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--params", type=json.loads, required=True)
p.add_argument("--records", nargs="+", required=True)
p.add_argument("--out", required=True, help="report folder")
args = p.parse_args()
params = args.params
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
df = report.table(load_records(args.records))
claims = report.verdicts(df, params["min_cosine"])
with atomic_file(out / "encoder.csv") as tmp:
    df.to_csv(tmp, index=False)
with atomic_file(out / "encoder_claims.csv") as tmp:
    import pandas as pd

    pd.DataFrame(claims).to_csv(tmp, index=False)
text = report.markdown(params["title"], df, claims, params["setup"], params["skipped"])
with atomic_file(out / "encoder.md") as tmp:
    tmp.write_text(text)
print(text)
