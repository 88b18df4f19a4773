#!/usr/bin/env bash
# vLLM 0.26.0 for an offline GPU node whose image has torch 2.11 (CUDA 13), packed for transfers of at most
# TRANSFER_BYTES each (tools/gpu/parts.sh room), from a host with a package index and the project's .venv:
#
#     bash tools/gpu/pack-vllm.sh        # -> .vparts/p0, p1, ... (ignored): 6 parts, 5 of 35 MB
#
# The parts hold the slimmed vllm wheel (slim-vllm-wheel.sh), the wheels of vllm-wheels.txt and the three
# small model folders of vllm_check_models.py. On the node, after .whl (tools/gpu/pack-offline.sh: the
# project's pinned wheels, pydantic and transformers among them) is installed into /tmp/site:
#     bash tools/gpu/parts.sh receive .vparts/pN                 # one transfer per part, carrying .vparts/pN
#     bash tools/gpu/parts.sh install N                          # after the last one
#     PYTHONPATH=/tmp/site python3 tools/gpu/vllm_check.py /tmp/extra/smol-tiny-vllm-gptq4 --json OUT.json
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx "/.vparts/" .git/info/exclude 2>/dev/null || echo "/.vparts/" >> .git/info/exclude
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/dl" "$tmp/pack"
# llguidance publishes manylinux_2_31 wheels only; pip matches each tag exactly
plat=(--python-version 3.12 --implementation cp --only-binary=:all: --platform manylinux_2_31_x86_64
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
for p in $(grep -v '^#' tools/gpu/vllm-wheels.txt | sed 's/#.*//; s/[[:space:]]*$//' | grep '=='); do
  python3 -m pip download -q --no-deps "${plat[@]}" -d "$tmp/dl" "$p"
done
bash tools/gpu/slim-vllm-wheel.sh "$tmp"/dl/vllm-*.whl "$tmp/pack"
find "$tmp/dl" -name '*.whl' ! -name 'vllm-*' -exec cp {} "$tmp/pack/" \;
.venv/bin/python tools/gpu/vllm_check_models.py "$tmp/pack" > "$tmp/models.log" 2>&1 \
  || { tail -20 "$tmp/models.log" >&2; exit 1; }
bash tools/gpu/parts.sh pack "$tmp/pack" .vparts
echo "$(ls "$tmp/pack" | wc -l) wheels and folders in $(ls -d .vparts/p* | wc -l) parts"
