"""The workflow's report, rebuilt on any host from records collected off the GPU machine (models
stay there): the same params and records the report rule passes (those that exist), the same script.
Usage: python tools/gpu/make_report.py CONFIG RESULTS_DIR   (RESULTS_DIR holds records/)"""
import json
import os
import subprocess
import sys

import yaml

from quantbench import validation
from quantbench.report.params import record_paths, report_params

config_path, root = sys.argv[1], sys.argv[2]
exp = validation.build(yaml.safe_load(open(config_path)), cuda_available=True)
# a run cut short leaves some variants without records: report on those it has
records = [p for p in record_paths(exp, root) if os.path.exists(p)]
subprocess.run([sys.executable, "workflow/scripts/report.py", "--params", json.dumps(report_params(exp)),
                "--records", *records, "--out", f"{root}/report"], check=True)
