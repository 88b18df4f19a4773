#!/usr/bin/env bash
# The lint gate CI runs before the tests: ruff (pycodestyle, pyflakes, import order), snakefmt --check
# on the Snakefile and workflow/rules/*.smk, and snakemake --lint on the causal-LM setups (settings in
# pyproject.toml). The encoder workflow is not linted yet (its rules keep helper functions beside them and
# name R in a shell command).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
.venv/bin/ruff check .
# As a module: a venv copied or linked from elsewhere keeps console scripts whose #! line names its old path.
.venv/bin/python -m snakefmt --check Snakefile workflow/rules/
# Random-weight GPU setups are planned as on a submit host without a GPU.
for setup in "" config/smollm2.yaml config/llama2-7b-fast.yaml; do
  echo "snakemake --lint ${setup:-(the embedded default)}"
  QUANTBENCH_ASSUME_CUDA=1 .venv/bin/snakemake --lint --cores 1 ${setup:+--configfile "$setup"}
done
