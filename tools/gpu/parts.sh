#!/usr/bin/env bash
# Carry more than one session's transfer allows (64 MiB with the tree): wheels and packaged data split into
# parts, a few per call, gathered under /tmp/parts there, installed once all have arrived.
#   here:   bash tools/gpu/parts.sh split DIR SIZE_BYTES   # DIR's files -> /tmp/parts-local/p0, p1, ... + sums
#           then for each call: copy that call's parts into ./.parts (ignored) and carry .parts
#           bash tools/gpu/parts.sh pack DIR FOLDER     # from the repository's root: DIR's files -> FOLDER/p0,
#           FOLDER/p1, ... (sums in p0), each part as large as a transfer holds beside the tree and 4 MiB;
#           carry one FOLDER/pN a call (pack-offline.sh and pack-vllm.sh use it)
#   there:  bash tools/gpu/parts.sh receive [FOLDER]       # keep this call's parts (default ./.parts)
#           bash tools/gpu/parts.sh install N              # once parts p0..p(N-1) are there: unpack, pip install
set -euo pipefail
case $1 in
split)
  rm -rf /tmp/parts-local && mkdir -p /tmp/parts-local
  tar cf - -C "$2" . | split -b "$3" -d -a 1 - /tmp/parts-local/p
  ( cd /tmp/parts-local && sha256sum p* > SHA256SUMS ) && ls -la /tmp/parts-local ;;
room)  # bytes a transfer holds beside the tree (tracked files and untracked ones git does not ignore) and
       # 4 MiB for a snapshot or a small file beside the last part; TRANSFER_BYTES: a transfer (64 MiB)
  tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s}')
  echo $(( ${TRANSFER_BYTES:-67108864} - tree - 4 * 1024 * 1024 )) ;;
pack)
  bash "$0" split "$2" "$(bash "$0" room)" > /dev/null
  rm -rf "$3"; n=0
  for f in /tmp/parts-local/p[0-9]; do mkdir -p "$3/p$n" && mv "$f" "$3/p$n/"; n=$(( n + 1 )); done
  mv /tmp/parts-local/SHA256SUMS "$3/p0/" && du -sb "$3"/* ;;
receive)  # FOLDER: this call's part, e.g. .parts/p1 as tools/gpu/pack-offline.sh writes them (default .parts)
  mkdir -p /tmp/parts && cp "${2:-.parts}"/* /tmp/parts/ && ls -la /tmp/parts ;;
install)
  cd /tmp/parts
  for i in $(seq 0 $(( $2 - 1 ))); do [ -e "p$i" ] || { echo "part p$i has not arrived" >&2; exit 1; }; done
  sha256sum -c --quiet SHA256SUMS || exit 1
  rm -rf /tmp/extra && mkdir -p /tmp/extra && cat $(seq -f 'p%g' 0 $(( $2 - 1 ))) | tar xf - -C /tmp/extra
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/extra/*.whl
  ls /tmp/extra ;;
*) echo "usage: parts.sh split DIR SIZE | room | pack DIR FOLDER | receive [FOLDER] | install N" >&2; exit 2 ;;
esac
