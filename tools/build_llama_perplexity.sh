#!/usr/bin/env bash
# Builds llama.cpp's own `llama-perplexity` tool (its --kl-divergence mode is what
# tools/llamacpp_kl_check.py checks our KL against), once, from the same llama.cpp source the
# GGUF backend runs: the llama-cpp-python sdist that scripts/setup-llamacpp.sh caches. The lean
# wheel has no tools; this builds the one target, with the wheel's instruction-set choice
# (GGML_NATIVE=OFF: AVX2, F16C, FMA) and static libraries, so the binary stands alone.
# Prints the binary's path; a second run finds it and prints the path at once.
# Measured here: 553 s wall (9 CPU-minutes) on 2 cores shared with a Snakemake job; 134 build steps.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(sed -n 's/^llama-cpp-python==\([^ ]*\).*/\1/p' requirements-llamacpp.txt)
cache=${QB_WHEEL_CACHE:-$HOME/.cache/quantbench/llama-cpp-python-$VERSION}
bin="$cache/llama-perplexity"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
sdist="$cache/llama_cpp_python-$VERSION.tar.gz"
[ -f "$sdist" ] || { echo "no sdist at $sdist: run bash scripts/setup-llamacpp.sh first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$sdist" -C "$work" "llama_cpp_python-$VERSION/vendor/llama.cpp"
src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"
start=$(date +%s)
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=OFF -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_CURL=OFF -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF >&2
cmake --build "$work/build" --target llama-perplexity -j "$(nproc)" >&2
install -m 755 "$work/build/bin/llama-perplexity" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "built llama-perplexity in $(( $(date +%s) - start )) s (wall, $(nproc) cores)" >&2
echo "$bin"
