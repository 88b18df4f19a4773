#!/usr/bin/env bash
# Opt-in: llama.cpp for the GGUF backend (methods with `backend: gguf`). Builds llama-cpp-python
# from its sdist as a lean, portable wheel (the libraries only: no tools, tests, examples, server,
# multimodal or chat-parsing "common" library; GGML_NATIVE=OFF, so the wheel runs on any x86-64
# CPU with AVX2 rather than only on the build machine), caches it, installs it into .venv with
# its dependencies pinned by requirements.txt, and unpacks llama.cpp's converter
# (convert_hf_to_gguf.py with its gguf-py, shipped in the sdist only) into .venv/share.
# Idempotent: a second run with the same pins does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VERSION=$(sed -n 's/^llama-cpp-python==\([^ ]*\).*/\1/p' requirements-llamacpp.txt)
stamp=.venv/.llamacpp.sha256
want=$(cat requirements.txt requirements-llamacpp.txt "$0" | sha256sum | cut -d' ' -f1)
[ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && exit 0

cache=${QB_WHEEL_CACHE:-$HOME/.cache/quantbench/llama-cpp-python-$VERSION}
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sdist="$cache/llama_cpp_python-$VERSION.tar.gz"
if [ ! -f "$sdist" ]; then
  .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    "llama-cpp-python==$VERSION" -d "$work/dl"
  mv "$work"/dl/llama_cpp_python-"$VERSION".tar.gz "$sdist"
fi
tar -xzf "$sdist" -C "$work"
src="$work/llama_cpp_python-$VERSION"
if ! ls "$cache"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  # llama-cpp-python forces llama.cpp's "common" library on; nothing the package installs links it.
  sed -i 's/set(LLAMA_BUILD_COMMON ON CACHE BOOL "Build llama.cpp common library" FORCE)/set(LLAMA_BUILD_COMMON OFF CACHE BOOL "" FORCE)/' \
    "$src/CMakeLists.txt"
  echo "building llama-cpp-python $VERSION (lean, portable; minutes, cached afterwards)..." >&2
  start=$(date +%s)
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
-DLLAMA_OPENSSL=OFF -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF" \
    .venv/bin/python -m pip wheel -q --disable-pip-version-check --no-deps -w "$work/wheel" "$src"
  mv "$work"/wheel/*.whl "$cache"/
  echo "built in $(( $(date +%s) - start )) s: $(ls "$cache"/*.whl)" >&2
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "$cache"/llama_cpp_python-"$VERSION"-*.whl
# its other dependencies (numpy, jinja2, typing-extensions) are already there, pinned through torch
.venv/bin/python -m pip install -q --disable-pip-version-check -c requirements.txt \
  $(sed -e 's/#.*//' -e '/^llama-cpp-python/d' requirements-llamacpp.txt)
conv=.venv/share/llama-cpp-convert
rm -rf "$conv" && mkdir -p "$conv"
cp -r "$src/vendor/llama.cpp/convert_hf_to_gguf.py" "$src/vendor/llama.cpp/conversion" \
  "$src/vendor/llama.cpp/gguf-py" "$src/vendor/llama.cpp/LICENSE" "$conv"/
.venv/bin/python -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__, llama_cpp.llama_print_system_info().decode())"
echo "$want" > "$stamp"
