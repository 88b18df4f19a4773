"""The workflow's report, rebuilt on any host from records collected off the GPU machine (models
stay there): the same params and records the report rule passes (those that exist), the same script.
Usage: python tools/gpu/make_report.py CONFIG [OVERLAY ...] RESULTS_DIR   (RESULTS_DIR holds records/;
overlays are merged into CONFIG the way Snakemake merges several --configfile files)"""
import json
import os
import subprocess
import sys

import yaml

from quantbench import validation
from quantbench.report.params import record_paths, report_params


def merge(base: dict, overlay: dict) -> dict:
    """Snakemake's merge of config files: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for k, v in overlay.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


*config_paths, root = sys.argv[1:]
config = {}
for path in config_paths:
    config = merge(config, yaml.safe_load(open(path)))
exp = validation.build(config, cuda_available=True)
# a run cut short leaves some variants without records: report on those it has
records = [p for p in record_paths(exp, root) if os.path.exists(p)]
subprocess.run([sys.executable, "workflow/scripts/report.py", "--params", json.dumps(report_params(exp)),
                "--records", *records, "--out", f"{root}/report"], check=True)
