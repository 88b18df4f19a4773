"""The committed SmolLM2 KV-cache example (results/reference/cpu/smollm2-135m-kvcache): its report is what
kv_report writes from its records, and the README's bytes per token and ± figures are the report's."""
from __future__ import annotations

import json
import re

from quantbench import kv_report
from tests.conftest import ROOT

EXAMPLE = ROOT / "results" / "reference" / "cpu" / "smollm2-135m-kvcache"


def _records() -> dict:
    records = {}
    for path in sorted((EXAMPLE / "records" / "kv").glob("*.json")):
        rec = json.loads(path.read_text())
        records[rec["subject"]] = rec
    return records


def test_the_report_is_kv_reports_output_for_the_records():
    records = _records()
    contexts = next(iter(records.values()))["params"]["kv_cache"]["contexts"]
    committed = (EXAMPLE / "report" / "kv_cache.md").read_text()
    # the run wrote its rows in the config's order (baseline, then each applied method and its caches)
    order = [line.split(" | ")[0].strip("| ") + ("@" + c if (c := line.split(" | ")[1]) != "plain" else "")
             for line in committed.split("### Cost")[1].splitlines() if line.startswith("| ") and "---" not in line
             and not line.startswith("| variant")]
    ordered = {name: records[name] for name in order}
    assert kv_report.markdown(ordered, "fp32", contexts, "figures/kv_kl_by_bucket.png") + "\n" == committed


def test_the_readme_quotes_the_report():
    readme = (EXAMPLE / "README.md").read_text()
    report = (EXAMPLE / "report" / "kv_cache.md").read_text()
    bytes_per_token = {round(r["metrics"]["kv_bytes_per_token"]) for r in _records().values()}
    quoted = {int(m.replace(" ", "")) for m in re.findall(r"(\d{1,2} \d{3}) \(0\.\d+×", readme)}
    assert quoted and quoted <= bytes_per_token
    # every "value ± half-width" of the README is one of the report's, as written there or rounded
    pairs = re.findall(r"(\d+\.\d+) ± (\d+\.\d+)", readme)
    number = r"(-?\d+\.?\d*(?:e-?\d+)?)"
    in_report = [(float(a), float(b)) for a, b in re.findall(f"{number} ± {number}", report)]
    for a, b in pairs:
        assert any(abs(float(a) - x) <= 0.51 * 10 ** -len(a.split(".")[1]) and
                   abs(float(b) - y) <= 0.51 * 10 ** -len(b.split(".")[1]) for x, y in in_report), f"{a} ± {b}"
