#!/usr/bin/env bash
# Run quantbench's Snakemake workflow on the lent H100 (no package index there; see docs/h100.md).
# From the repo root, with .whl (and .kcache once built) carried:
#   bash tools/h100/run.sh smoke                      # installs, bandwidth, Marlin build, smoke DAG
#   bash tools/h100/run.sh run CONFIG [TARGET ...]    # the workflow (or some of its targets)
# Everything worth keeping goes to $OUT (records, reports, logs; never model folders).
set -uo pipefail
stage=$1; shift
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
t_start=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/pypcre-*.tar.gz || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# The GPTQModel JIT kernels are built once and carried between machines in .kcache; the inductor
# cache stays on the machine (compilation is kept out of the timings by warm-up calls).
export GPTQMODEL_TORCH_EXTENSIONS_DIR=$PWD/.kcache/gptqmodel TORCH_CUDA_ARCH_LIST=9.0
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
mkdir -p "$GPTQMODEL_TORCH_EXTENSIONS_DIR"
echo "install done in $(( $(date +%s) - t_start )) s"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv | tee "$OUT/gpu.csv"
python3 - <<'PY' 2>&1 | grep -v Warning | tee "$OUT/versions.txt"
import importlib.metadata as md, torch
for n in ("torch", "transformers", "bitsandbytes", "gptqmodel", "peft", "optimum", "accelerate", "triton", "snakemake"):
    try: print(n, md.version(n))
    except Exception as e: print(n, "MISSING", e)
print("cuda", torch.version.cuda, torch.cuda.get_device_name(0))
from quantbench import timing
print("copy_bandwidth_gb_per_s", [round(timing.measure_copy_bandwidth_gb_per_s("cuda", mb=1024, repeats=20)) for _ in range(3)])
PY
smk() { timeout "$1" python3 -m snakemake --cores "$(nproc)" --scheduler greedy --keep-going --rerun-incomplete "${@:2}"; }
collect() {  # records, reports and logs of one results folder, in one archive
  local name=$1
  tar czf "$OUT/$name.tgz" --exclude='*/models/*' --exclude='*/adapters/*' --exclude='*/data/*' \
      --exclude='*/reference/*' "results/$name" 2>/dev/null
}
case $stage in
  smoke)
    ( t0=$(date +%s); python3 -c "from gptqmodel import extension; print(extension.load('marlin_fp16'))" \
        > "$OUT/marlin_build.log" 2>&1; echo "marlin build $(( $(date +%s) - t0 )) s" >> "$OUT/marlin_build.log" ) &
    build=$!
    smk "${SMOKE_TIMEOUT:-420}" --configfile tools/h100/smoke.yaml 2>&1 | tee "$OUT/snakemake.log" | grep -E "^(rule|Finished|Error|\[)|error|Exception" | head -100
    wait $build; tail -3 "$OUT/marlin_build.log"
    collect smoke-7b-l2
    tar czf "$OUT/kcache.tgz" .kcache; ls -la "$OUT"; du -sh .kcache
    ;;
  run)
    config=$1; shift
    name=$(python3 -c "import yaml,sys; print(yaml.safe_load(open('$config'))['model']['name'])")
    smk "${RUN_TIMEOUT:-540}" --configfile "$config" "$@" 2>&1 | tee "$OUT/snakemake-$name.log" | grep -E "^(rule|Finished|Error)|error|Exception" | head -80
    collect "$name"; ls -la "$OUT"
    ;;
esac
echo "stage $stage done in $(( $(date +%s) - t_start )) s"
