#!/usr/bin/env bash
# Carry more than one session's transfer allows (64 MiB with the tree): wheels and packaged data split into
# parts, a few per call, gathered under /tmp/parts there, installed once all have arrived.
#   here:   bash tools/gpu/parts.sh split DIR SIZE_BYTES   # DIR's files -> /tmp/parts-local/p0, p1, ... + sums
#           then for each call: copy that call's parts into ./.parts (ignored) and carry .parts
#           (tools/gpu/pack-offline.sh packs a SmolLM2 run's into .parts/p0, p1, ...: carry one a call)
#   there:  bash tools/gpu/parts.sh receive [FOLDER]       # keep this call's parts (default ./.parts)
#           bash tools/gpu/parts.sh install N              # once parts p0..p(N-1) are there: unpack, pip install
set -euo pipefail
case $1 in
split)
  rm -rf /tmp/parts-local && mkdir -p /tmp/parts-local
  tar cf - -C "$2" . | split -b "$3" -d -a 1 - /tmp/parts-local/p
  ( cd /tmp/parts-local && sha256sum p* > SHA256SUMS ) && ls -la /tmp/parts-local ;;
receive)  # FOLDER: this call's part, e.g. .parts/p1 as tools/gpu/pack-offline.sh writes them (default .parts)
  mkdir -p /tmp/parts && cp "${2:-.parts}"/* /tmp/parts/ && ls -la /tmp/parts ;;
install)
  cd /tmp/parts
  for i in $(seq 0 $(( $2 - 1 ))); do [ -e "p$i" ] || { echo "part p$i has not arrived" >&2; exit 1; }; done
  sha256sum -c --quiet SHA256SUMS || exit 1
  rm -rf /tmp/extra && mkdir -p /tmp/extra && cat $(seq -f 'p%g' 0 $(( $2 - 1 ))) | tar xf - -C /tmp/extra
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/extra/*.whl
  ls /tmp/extra ;;
*) echo "usage: parts.sh split DIR SIZE | receive | install N" >&2; exit 2 ;;
esac
