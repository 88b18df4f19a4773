"""The setup README.md shows under "Configuring" is a valid one: it plans (a dry run, CUDA assumed),
with the fine-tune, the recipe's merges and re-quantization among its jobs."""
import os
import re
import subprocess
import sys

from tests.conftest import ROOT


def test_the_readmes_setup_plans(tmp_path):
    section = (ROOT / "README.md").read_text().split("\n## Configuring", 1)[1].split("\n## ", 1)[0]
    setup = tmp_path / "my-setup.yaml"
    setup.write_text(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--configfile", str(setup),
                           "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path)],
                          capture_output=True, text=True, env={**os.environ, "QUANTBENCH_ASSUME_CUDA": "1"},
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert all(re.search(rf"^{rule}\s+\d+$", proc.stdout, re.M) for rule in ("finetune", "merge", "requantize"))
