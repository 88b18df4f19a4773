#!/usr/bin/env bash
# Run by Snakemake inside the freshly created env (--software-deployment-method conda): llama-cpp-python
# built from its sdist as scripts/setup-llamacpp.sh builds it for .venv (lean: the libraries only;
# GGML_NATIVE=OFF: portable to any x86-64 CPU with AVX2), and llama.cpp's converter, which ships in
# the sdist only, unpacked where quantbench/llamacpp.py looks for it ($CONDA_PREFIX/share).
set -euo pipefail
VERSION=0.3.36
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
python -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$work"
tar -xzf "$work/llama_cpp_python-$VERSION.tar.gz" -C "$work"
src="$work/llama_cpp_python-$VERSION"
sed -i 's/set(LLAMA_BUILD_COMMON ON CACHE BOOL "Build llama.cpp common library" FORCE)/set(LLAMA_BUILD_COMMON OFF CACHE BOOL "" FORCE)/' \
  "$src/CMakeLists.txt"
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
-DLLAMA_OPENSSL=OFF -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF" \
  python -m pip install --no-deps "$src"
conv="$CONDA_PREFIX/share/llama-cpp-convert"
rm -rf "$conv" && mkdir -p "$conv"
cp -r "$src/vendor/llama.cpp/convert_hf_to_gguf.py" "$src/vendor/llama.cpp/conversion" \
  "$src/vendor/llama.cpp/gguf-py" "$src/vendor/llama.cpp/LICENSE" "$conv"/
python -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__)"
