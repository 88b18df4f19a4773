#!/usr/bin/env bash
# Set up and run the tests (unit tests and real Snakemake runs of the toy DAG).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest tests -v -p no:cacheprovider "$@"
