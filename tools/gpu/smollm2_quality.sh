#!/usr/bin/env bash
# SmolLM2's quality on an offline GPU node without benchmarks (results/reference/h200/smollm2-135m-cuda-quality):
# the evaluate records of every CUDA variant of config/smollm2-cuda.yaml, then its GGUF variants
# (llama.cpp on cores 0-7), and beside them torchao int8 dynamic on the host CPU (cores 8-15, the
# lane of tools/gpu/cpu_run.sh). Session commands, back to back, after dag_run.sh prep and the parts p0, p1:
#   call (carry .parts with p2):  QB_GIT_COMMIT=<commit> bash tools/gpu/smollm2_quality.sh start
#   then:                         bash tools/gpu/smollm2_quality.sh gguf 520
#   then, until both say so:      bash tools/gpu/smollm2_quality.sh wait 500
set -u
E=results/smollm2-135m-cuda/records/evaluate
T=""
for v in fp32 bnb-int8 bnb-nf4 bnb-fp4 bnb-nf4-nodq bnb-fp4-nodq gptq-2bit-g64 gptq-3bit-g64 gptq-4bit-g64 \
    gptq-8bit-g64 gptq-2bit-g64-act gptq-3bit-g64-act gptq-4bit-g64-act gptq-8bit-g64-act torchao-int8wo \
    torchao-int8dyn torchao-int4-g64 hqq-4bit-g64 hqq-2bit-g32 awq-4bit-g64 fp32+lora bnb-nf4+lora \
    bnb-nf4+lora+merge-fp bnb-nf4+lora+merge-fp+gptq-4bit-g64 bnb-nf4+lora+merge-dequant \
    bnb-nf4+lora+merge-dequant+gptq-4bit-g64; do T="$T $E/$v.json"; done
C=results/reference/cpu/smollm2-135m/records/evaluate
case $1 in
start)
  bash tools/gpu/parts.sh receive > /dev/null && bash tools/gpu/parts.sh install 3 || exit 1
  tar xJf /tmp/extra/wn-min.tar.xz -C /tmp/site || exit 1
  bash tools/gpu/cpu_run.sh start 8-15 smollm2-135m $C/fp32.json $C/torchao-int8dyn.json \
      --configfile config/smollm2.yaml config/overlays/smollm2-int8dyn.yaml --config max_threads=8
  WAIT_S=400 bash tools/gpu/dag_run.sh start config/smollm2-cuda.yaml 0 $T ;;
gguf)  # once the CUDA DAG has ended: the GGUF rows in its tree (the GPU variants' fp32 reference is there)
  G=""; for v in gguf-f32 gguf-q8_0 gguf-q4_k_m gguf-q4_0 bnb-nf4+lora+merge-fp+gguf-q4_k_m \
      bnb-nf4+lora+merge-dequant+gguf-q4_k_m; do G="$G $E/$v.json"; done
  export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
  export QB_LLAMACPP_CONVERTER_DIR=/tmp/extra/llama-cpp-convert
  rm -f /tmp/qb/done
  ( cd /tmp/trees/dag && setsid taskset -c 0-7 bash -c 'python3 -m snakemake --cores 8 --keep-going $0 \
      --configfile config/smollm2-cuda.yaml < /dev/null > /tmp/qb/snakemake-gguf.log 2>&1; \
      echo "$(date -u +%T) GGUF end rc=$?" >> /tmp/qb/progress.txt; touch /tmp/qb/done' "$G" & )
  echo "$(date -u +%T) GGUF start" >> /tmp/qb/progress.txt
  bash tools/gpu/dag_run.sh wait "$2"; bash tools/gpu/cpu_run.sh collect smollm2-135m ;;
wait)
  bash tools/gpu/dag_run.sh wait "$2"; bash tools/gpu/cpu_run.sh collect smollm2-135m ;;
*) echo "usage: smollm2_quality.sh start | gguf SECONDS | wait SECONDS" >&2; exit 2 ;;
esac
