#!/usr/bin/env bash
# Run quantbench's Snakemake workflow on an offline GPU node (no package index there; see docs/running.md).
# One workflow run outlives the 10-minute limit of one session command: `start` launches it in its own
# process session (it runs on while the machine is held) and `wait` follows it in later calls.
# From the repo root, with .whl carried:
#   bash tools/gpu/run.sh start CONFIG[:TARGET,...] ...  # install, kernels, then each config in turn
#   bash tools/gpu/run.sh wait SECONDS                   # follow it; collect what exists into $OUT
# QB_GIT_COMMIT names the commit of the copied tree in every record (its .git, if any, is stale).
# KERNELS: JIT kernels built in the background at the start (default: marlin_fp16 exllamav2).
# The device tool re-syncs the working tree at every call and deletes files git does not ignore:
# keep results/<run>/ and .kcache/ ignored (.git/info/exclude) or records vanish between calls.
set -uo pipefail
stage=$1; shift
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
RUN=/tmp/qb; mkdir -p "$RUN"; TREES=/tmp/trees
export CUDA_DEVICE_ORDER=PCI_BUS_ID PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Kernel builds are cached here and reused by every job (Marlin takes ~4 min to build once).
export GPTQMODEL_TORCH_EXTENSIONS_DIR=/tmp/kcache/gptqmodel TORCH_CUDA_ARCH_LIST=9.0
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor

collect() {  # this run's records, reports and logs, small enough to come back (at most 8 files)
  for name in $(cat "$RUN/names" 2>/dev/null); do
    for tree in "$TREES"/lane*; do
      [ -d "$tree/results/$name/records" ] || continue
      tar czf "$OUT/$name.tgz" -C "$tree" --exclude="results/$name/models" --exclude="results/$name/adapters" \
          --exclude="results/$name/data" --exclude="results/$name/reference" "results/$name" 2>/dev/null
    done
  done
  df -h . /tmp > "$RUN/disk.txt" 2>&1
  ( cd "$RUN" && tar czf "$OUT/logs.tgz" --exclude=runner.log *.log *.txt *.csv 2>/dev/null )
  ls -la "$OUT"
}

case $stage in
start)
  t_start=$(date +%s)
  if [ ! -e /tmp/site/.installed ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/pypcre-*.tar.gz || exit 1
    touch /tmp/site/.installed
  fi
  mkdir -p "$GPTQMODEL_TORCH_EXTENSIONS_DIR"
  echo "install done in $(( $(date +%s) - t_start )) s"; df -h . /tmp
  # Build the JIT kernels in the background while the models are built and quantized; no
  # benchmark starts before every build has ended (a build beside a timed cell spread it to 72%).
  # Each build closes its inherited streams: one that held this script's stdout kept
  # `run.sh start ... | tail` waiting for the build to end (a session command ran out its limit so).
  rm -f "$RUN"/build-*.done
  for ext in ${KERNELS-marlin_fp16 exllamav2}; do
    ( t0=$(date +%s); python3 -c "from gptqmodel import extension; print(extension.load('$ext'))" \
        > "$RUN/build-$ext.log" 2>&1; echo "$ext build $(( $(date +%s) - t0 )) s" >> "$RUN/build-$ext.log"
      touch "$RUN/build-$ext.done" ) < /dev/null > /dev/null 2>&1 &
  done
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv > "$RUN/gpu.csv"
  python3 - > "$RUN/versions.txt" 2>&1 <<'PY'
import importlib.metadata as md, os, torch
for n in ("torch", "transformers", "bitsandbytes", "gptqmodel", "peft", "optimum", "accelerate", "triton", "snakemake"):
    try: print(n, md.version(n))
    except Exception as e: print(n, "MISSING", e)
print("cuda", torch.version.cuda, torch.cuda.get_device_name(0))
print("git_commit", os.environ.get("QB_GIT_COMMIT"))
from quantbench import timing
print("copy_bandwidth_gb_per_s", [round(timing.measure_copy_bandwidth_gb_per_s("cuda", mb=1024, repeats=20)) for _ in range(3)])
PY
  cat "$RUN/gpu.csv" "$RUN/versions.txt"
  rm -rf "$RUN/done" "$RUN"/lane-*.done "$RUN"/prepared-*
  export KERNELS_WAIT="${KERNELS-marlin_fp16 exllamav2}"
  for arg in "$@"; do  # the runs whose results come back
    python3 -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['model']['name'])" "${arg%%:*}"
  done > "$RUN/names"
  # Lanes: with several GPUs, config i runs on GPU i mod n with its own share of the cores (taskset),
  # so one config's compilation never runs on the cores that time the other's cells. Each lane runs
  # from its own copy of the tree, which no later session re-syncs while it runs.
  ngpu=$(nvidia-smi -L | wc -l); nlanes=$(( $# < ngpu ? $# : ngpu )); ncpu=$(nproc)
  per=$(( ncpu / nlanes )); echo "$ngpu GPUs, $nlanes lanes, $per cores each"
  rm -rf "$TREES"; mkdir -p "$TREES"
  i=0
  for arg in "$@"; do
    lane=$(( i % nlanes )); i=$(( i + 1 ))
    echo "$arg" >> "$RUN/lane-$lane.configs"
  done
  for lane in $(seq 0 $(( nlanes - 1 ))); do
    tree="$TREES/lane$lane"; mkdir -p "$tree"
    tar cf - --exclude=./.whl --exclude=./.kcache --exclude=./.snakemake --exclude=./.git --exclude='./results/*' . \
        | tar xf - -C "$tree"
    cores="$(( lane * per ))-$(( lane * per + per - 1 ))"
    # The lane in its own session: it goes on between sessions.
    pin="taskset -c $cores"; command -v taskset > /dev/null || pin=""
    ( cd "$tree" && CUDA_VISIBLE_DEVICES=$lane setsid $pin bash -c '
      lane=$1; n=$2; shift 2; cores=$(nproc)
      # Phase 1, beside the kernel builds: base models and quantized checkpoints (no timing depends on them).
      while read -r arg; do
        config=${arg%%:*}
        python3 -m snakemake --cores "$cores" --keep-going --until quantize reuse_checkpoint requantize \
            --configfile "$config" < /dev/null >> '"$RUN"'/snakemake-prepare-$lane.log 2>&1
        echo "$(date +%T) lane $lane prepared $config rc=$?" >> '"$RUN"'/progress.txt
      done < '"$RUN"'/lane-$lane.configs
      touch '"$RUN"'/prepared-$lane
      # No lane benchmarks before every lane has prepared and every kernel is built.
      for l in $(seq 0 $(( n - 1 ))); do while [ ! -e '"$RUN"'/prepared-$l ]; do sleep 5; done; done
      for ext in $KERNELS_WAIT; do
        while [ ! -e '"$RUN"'/build-$ext.done ]; do sleep 5; done
      done
      echo "$(date +%T) lane $lane: kernels built, benchmarks start" >> '"$RUN"'/progress.txt
      # Phase 2: the named targets one at a time in the order given (the most wanted first, should
      # the job time limit), then everything else, reports included.
      while read -r arg; do
        config=${arg%%:*}; targets=""; [ "$config" != "$arg" ] && targets=${arg#*:}
        name=$(python3 -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))[\"model\"][\"name\"])" "$config")
        for target in ${targets//,/ } ""; do
          echo "$(date +%T) lane $lane start $config ${target:-all}" >> '"$RUN"'/progress.txt
          python3 -m snakemake --cores "$cores" --scheduler greedy --keep-going $target --configfile "$config" \
              < /dev/null >> '"$RUN"'/snakemake-$name.log 2>&1
          echo "$(date +%T) lane $lane $config ${target:-all} rc=$?" >> '"$RUN"'/progress.txt
        done
      done < '"$RUN"'/lane-$lane.configs
      touch '"$RUN"'/lane-$lane.done' _ "$lane" "$nlanes" < /dev/null > "$RUN/runner-$lane.log" 2>&1 & )
  done
  # done once every lane is
  setsid bash -c 'for l in $(seq 0 $(( $1 - 1 ))); do while [ ! -e '"$RUN"'/lane-$l.done ]; do sleep 5; done; done
                  touch '"$RUN"'/done' _ "$nlanes" < /dev/null > /dev/null 2>&1 &
  echo "workflow started: $*"
  limit=${WAIT_S:-480} ;;
wait) limit=$1 ;;
*) echo "usage: run.sh start CONFIG... | wait SECONDS" >&2; exit 2 ;;
esac

t0=$(date +%s)
# collect every 2 minutes too: a call cut short (device time spent) still brings back recent records
while [ ! -e "$RUN/done" ] && [ $(( $(date +%s) - t0 )) -lt "$limit" ]; do
  sleep 10; [ $(( ($(date +%s) - t0) % 120 )) -lt 10 ] && collect > /dev/null 2>&1
done
cat "$RUN/progress.txt" 2>/dev/null
for f in "$RUN"/snakemake-*.log; do
  [ -e "$f" ] && { echo "== $f"; grep -E "^(localrule|rule) |Finished jobid|Error in rule|steps \(|of [0-9]+ steps" "$f" | tail -25; }
done
tail -2 "$RUN"/build-*.log 2>/dev/null
collect
[ -e "$RUN/done" ] && echo "WORKFLOW DONE" || echo "still running"
