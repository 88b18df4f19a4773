#!/usr/bin/env bash
# llama-cpp-python's sdist without what a library build never reads, for carrying to an offline GPU node
# where tools/gpu/build-llamacpp-cuda.sh builds it (--sdist OUT/llama_cpp_python-VERSION.tar.gz): the
# sdist is 77 MB, mostly llama.cpp's vocabulary test files (models/), docs, tools, tests and examples,
# and the GPU backends other than CUDA. Kept: the Python package, llama.cpp's CMake tree, src/, include/,
# ggml's CPU and CUDA backends, vendor/ (headers the library includes) and the converter
# (convert_hf_to_gguf.py, conversion/, gguf-py/) that the quantize jobs run.
#
#     bash tools/gpu/slim-llamacpp-sdist.sh OUT_DIR [SDIST]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: bash tools/gpu/slim-llamacpp-sdist.sh OUT_DIR [SDIST]" >&2; exit 2; }
out=$1
VERSION=$(sed -n 's/^llama-cpp-python==\([^ ]*\).*/\1/p' requirements-llamacpp.txt)
sdist=${2:-${QB_WHEEL_CACHE:-$HOME/.cache/quantbench/llama-cpp-python-$VERSION}/llama_cpp_python-$VERSION.tar.gz}
[ -f "$sdist" ] || { echo "no sdist at $sdist (scripts/setup-llamacpp.sh downloads it)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$sdist" -C "$work"
name=llama_cpp_python-$VERSION
lc="$work/$name/vendor/llama.cpp"
# add_subdirectory() of these is behind options the build turns off (LLAMA_BUILD_TESTS/TOOLS/EXAMPLES/SERVER);
# .git (39 MB, the sdist ships the repository) only names the commit in build-info.cmake, "unknown" without
rm -rf "${lc:?}"/{models,docs,tools,tests,benches,examples,media,gguf-py/tests,.git,.github,.devops} \
  "$work/$name"/{docs,examples,tests,.git,.github}
# ggml's backends other than the CPU and CUDA ones: each is added only when its GGML_<NAME> option is on
for b in "$lc"/ggml/src/ggml-*/; do
  case $(basename "$b") in ggml-cpu|ggml-cuda) ;; *) rm -rf "$b" ;; esac
done
mkdir -p "$out"
tar -czf "$out/$name.tar.gz" -C "$work" "$name"
ls -la "$out/$name.tar.gz"
