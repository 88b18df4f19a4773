#!/usr/bin/env bash
# Run quantbench's Snakemake workflow on the lent H100 (no package index there; see docs/h100.md).
# From the repo root, with .whl carried:
#   bash tools/h100/run.sh smoke                          # installs, bandwidth, Marlin build, smoke DAG
#   bash tools/h100/run.sh run CONFIG [TARGET ...]        # the workflow (or some of its targets)
# MARLIN=1 builds the Marlin kernel in the background from the start (it takes ~4 min; the
# benchmark job waits on its lock and records the wait as kernel_prebuild_s, outside the timings).
# Everything worth keeping goes to $OUT (records, reports, logs; never model folders).
set -uo pipefail
stage=$1; shift
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t_start=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/pypcre-*.tar.gz || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export GPTQMODEL_TORCH_EXTENSIONS_DIR=$PWD/.kcache/gptqmodel TORCH_CUDA_ARCH_LIST=9.0
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
mkdir -p "$GPTQMODEL_TORCH_EXTENSIONS_DIR"
echo "install done in $(( $(date +%s) - t_start )) s"
if [ "${MARLIN:-0}" = 1 ] || [ "$stage" = smoke ]; then
  ( t0=$(date +%s); python3 -c "from gptqmodel import extension; print(extension.load('marlin_fp16'))" \
      > "$OUT/marlin_build.log" 2>&1; echo "marlin build $(( $(date +%s) - t0 )) s" >> "$OUT/marlin_build.log" ) &
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv > "$OUT/gpu.csv"
python3 - > "$OUT/versions.txt" 2>&1 <<'PY'
import importlib.metadata as md, torch
for n in ("torch", "transformers", "bitsandbytes", "gptqmodel", "peft", "optimum", "accelerate", "triton", "snakemake"):
    try: print(n, md.version(n))
    except Exception as e: print(n, "MISSING", e)
print("cuda", torch.version.cuda, torch.cuda.get_device_name(0))
from quantbench import timing
print("copy_bandwidth_gb_per_s", [round(timing.measure_copy_bandwidth_gb_per_s("cuda", mb=1024, repeats=20)) for _ in range(3)])
PY
cat "$OUT/gpu.csv" "$OUT/versions.txt"
# Output to a file, not a pipe: a job left running after the timeout must not hold the command open.
smk() { timeout -k 20 "$1" python3 -m snakemake --cores "$(nproc)" --scheduler greedy --keep-going --rerun-incomplete "${@:2}"; }
collect() {  # records, reports and logs of one results folder, in one archive
  tar czf "$OUT/$1.tgz" --exclude="results/$1/models" --exclude="results/$1/adapters" \
      --exclude="results/$1/data" --exclude="results/$1/reference" "results/$1" 2>/dev/null
}
case $stage in
  smoke) config=tools/h100/smoke.yaml ;;
  run) config=$1; shift ;;
esac
name=$(python3 -c "import yaml; print(yaml.safe_load(open('$config'))['model']['name'])")
# a run killed at its timeout leaves the working directory locked
rm -rf .snakemake/locks
smk "${RUN_TIMEOUT:-480}" "$@" --configfile "$config" > "$OUT/snakemake-$name.log" 2>&1
echo "snakemake rc=$? after $(( $(date +%s) - t_start )) s"
grep -E "^(localrule|rule) |Finished jobid|Error in rule|steps \(" "$OUT/snakemake-$name.log" | tail -40
collect "$name"; ls -la "$OUT"
echo "stage $stage done in $(( $(date +%s) - t_start )) s"
