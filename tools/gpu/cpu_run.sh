#!/usr/bin/env bash
# A CPU workflow on the GPU node's own cores, beside (or instead of) a GPU lane of run.sh: for methods
# whose CPU kernels need instructions the 2-core development machine lacks (torchao's int8 x int8
# product needs VNNI or AMX to be fast). It runs from its own copy of the tree, pinned to CORES, in its
# own process session, so it goes on between sessions.
#   bash tools/gpu/cpu_run.sh start CORES NAME SNAKEMAKE_ARGS...   # NAME: the config's model name
#   bash tools/gpu/cpu_run.sh collect NAME                          # records, logs, data hashes -> $OUT
set -uo pipefail
RUN=/tmp/qb; mkdir -p "$RUN"; OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
case $1 in
start)
  cores=$2; name=$3; shift 3
  tree=/tmp/trees/cpu-$name; rm -rf "$tree"; mkdir -p "$tree"
  tar cf - --exclude=./.whl --exclude=./.parts --exclude=./.snakemake --exclude=./.git --exclude='./results/*' . \
      | tar xf - -C "$tree"
  ( cd "$tree" && export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
        TOKENIZERS_PARALLELISM=false && setsid taskset -c "$cores" bash -c '
      python3 -m snakemake --cores "$(nproc)" --keep-going "$@" < /dev/null > '"$RUN/snakemake-cpu-$name.log"' 2>&1
      echo "rc=$?" > '"$RUN/cpu-$name.done" _ "$@" < /dev/null > /dev/null 2>&1 & )
  lscpu | grep -E "Model name|^CPU\(s\)"; echo "started on cores $cores: $*" ;;
collect)
  name=$2; tree=/tmp/trees/cpu-$name
  ( cd "$tree/results/$name" && sha256sum data/*.jsonl > "$RUN/cpu-$name-data.sha256" 2>/dev/null )
  tar czf "$OUT/$name-cpu.tgz" -C "$tree" --exclude="results/$name/models" --exclude="results/$name/reference" \
      --exclude="results/$name/adapters" --exclude="results/$name/data" "results/$name" \
      -C "$RUN" "snakemake-cpu-$name.log" "cpu-$name-data.sha256" 2>/dev/null
  grep -E "^(rule|localrule) |Finished jobid|Error in rule|of [0-9]+ steps" "$RUN/snakemake-cpu-$name.log" | tail -20
  cat "$RUN/cpu-$name.done" 2>/dev/null || echo "still running" ;;
*) echo "usage: cpu_run.sh start CORES NAME ARGS... | collect NAME" >&2; exit 2 ;;
esac
