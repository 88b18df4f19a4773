#!/usr/bin/env bash
# Set up and run the main job: the embedded default (toy Llama, CPU, no network) end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/snakemake --cores all "$@"
