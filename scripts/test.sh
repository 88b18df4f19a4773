#!/usr/bin/env bash
# Set up and run the tests (unit tests and real Snakemake runs of the toy DAG, llama.cpp included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the GGUF backend's tests run the real llama.cpp: its opt-in build is part of the test setup
bash scripts/setup-llamacpp.sh
# the slowest tests at the end: the suite should stay under 40 minutes on two cores
exec .venv/bin/python -m pytest tests -v -p no:cacheprovider --durations=25 "$@"
