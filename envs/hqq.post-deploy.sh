#!/usr/bin/env bash
# Run by Snakemake inside the freshly created env (--software-deployment-method conda): hqq without
# its CUDA extension, which it would compile wherever nvcc exists and which quantbench never calls
# (it runs hqq's PyTorch backend). Its dependencies are already in the env, pinned by the env file.
set -euo pipefail
DISABLE_CUDA=1 python -m pip install --no-deps --no-build-isolation "hqq==0.2.8.post1"
python -c "import hqq; print('hqq', hqq.__version__)"
