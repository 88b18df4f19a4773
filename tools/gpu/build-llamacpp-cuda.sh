#!/usr/bin/env bash
# Builds llama-cpp-python (the version requirements-llamacpp.txt pins) with llama.cpp's CUDA backend for
# Hopper (sm_90: H100, H200), for GGUF methods with `offload: gpu` (quantbench/backends/gguf.py), on an
# offline GPU node, and installs it into a folder of its own:
#
#     bash tools/gpu/build-llamacpp-cuda.sh --target DIR [--wheels WHEELS] [--sdist FILE]
#     export PYTHONPATH=DIR:$PYTHONPATH     # DIR's llama_cpp before any CPU build installed elsewhere
#     export QB_LLAMACPP_CONVERTER_DIR=DIR/llama-cpp-convert   # llama.cpp's converter, for quantize jobs
#
# It prints the build's wall seconds and llama_print_system_info() (a CUDA build lists "CUDA : ARCHS = 900").
# Built on an H100 node (16 cores, nvcc 13, torch's cuBLAS) in 257 s: it imported and listed "CUDA : ARCHS = 900";
# a model loaded with it crashed in any process that had imported torch, or numpy before llama.cpp's libraries
# (quantbench/llamacpp_worker.py: why llama.cpp on the GPU runs in a process of its own that loads it first);
# builds there with GGML_CUDA_NO_VMM=ON or the system's g++ crashed alike. Checked first on a host without a
# GPU (2 cores; nvcc 13.0 from NVIDIA's pip
# packages, cuBLAS from the nvidia-cublas 13.10.0.20 wheel, no driver, so GGML_CUDA_NO_VMM=ON; the cmake
# 4.4.5 wheel): it configured, built in 1614 s of wall time, installed and imported, printing
# "CUDA : ARCHS = 900 | NO_VMM = 1 | USE_GRAPHS = 1 | FA_QUANTS = q4_0-q4_0,q8_0-q8_0,f16-f16,bf16-bf16 |
# CPU : ... AVX2 = 1 ..."; CUDA could not initialise there (no driver), so llama_supports_gpu_offload()
# said False. The wheel is 257 MB (libggml-cuda.so, 60 MB, is stored three times: a wheel keeps no
# symbolic links), and so is what it installs.
#
# What it builds: scripts/setup-llamacpp.sh's lean wheel (libraries only: no tools, tests, examples,
# server, multimodal or "common" library; GGML_NATIVE=OFF for the CPU part, so any AVX2 host runs it), plus
#   -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90   kernels for sm_90 only (llama.cpp's default list is 8 archs)
#   -DGGML_CUDA_FA_QUANTS=q4_0-q4_0;q8_0-q8_0;f16-f16;bf16-bf16 (and the deprecated GGML_CUDA_FA_ALL_QUANTS=OFF)
#       flash-attention kernels for these K-V cache type pairs only: the plain f16 cache and the KV-cache
#       overlay's q8_0 and q4_0 caches (config/overlays/smollm2-kvcache.yaml); other pairs have no CUDA
#       flash-attention kernel in this build (what llama.cpp then does was not checked)
#   -DGGML_CUDA_NCCL=OFF                            one GPU per job: no NCCL to find or link
#   CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)             every core
#
# Where the node's CUDA toolkit is assembled from NVIDIA's pip packages (nvcc under /usr/local/cuda-13.0,
# say, without cuBLAS and without the driver stub libcuda.so), the
# script finds cuBLAS in the Python's own nvidia/cu13 packages (torch's; QB_CUBLAS_DIR names another
# folder with lib/libcublas.so.13 and include/cublas_v2.h) and links the driver's libcuda.so.1; without
# one it builds with GGML_CUDA_NO_VMM=ON (llama.cpp's plain cudaMalloc pool instead of virtual memory).
#
# What must travel to an offline node (download on a host with a package index, e.g.
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d WHEELS \
#     scikit-build-core==1.1.2 pathspec==1.1.1 packaging==25.0 cmake==4.4.5 ninja==1.13.2 diskcache==5.6.3
# ; each was found for cp312 manylinux x86_64 when this was written):
#   - the sdist, llama_cpp_python-0.3.36.tar.gz (~/.cache/quantbench/llama-cpp-python-0.3.36/, where
#     scripts/setup-llamacpp.sh downloads it; or --sdist FILE): 77 MB as published, 4 MB as
#     tools/gpu/slim-llamacpp-sdist.sh writes it (the same sources without docs, test models, tools and
#     other GPU backends; its CUDA configure was checked, its build not yet)
#   - its build backend: scikit_build_core-1.1.2-py3-none-any.whl (the sdist's build-system requires
#     scikit-build-core[pyproject]>=0.9.2; 1.1.2 has no `pyproject` extra any more, pip only warns),
#     with its dependencies pathspec-1.1.1-py3-none-any.whl and packaging-25.0-py3-none-any.whl (>=23.2)
#   - cmake-4.4.5-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl (30 MB): used when present, else
#     the node's cmake (>= 3.21; one older than the node's nvcc may not know its toolkit's layout)
#   - ninja-1.13.2-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl: used when present, else the
#     node's ninja (the GPU image has one)
#   - diskcache-5.6.3-py3-none-any.whl: llama_cpp imports it (its other dependencies, numpy, jinja2 and
#     typing-extensions, come with torch)
# and the build needs nvcc (CUDACXX, else nvcc on PATH, else /usr/local/cuda/bin/nvcc) and a C++ compiler.
set -euo pipefail
cd "$(dirname "$0")/../.."

usage() { echo "usage: bash tools/gpu/build-llamacpp-cuda.sh --target DIR [--wheels WHEELS] [--sdist FILE]" >&2; exit 2; }
target="" wheels="" sdist=""
while [ $# -gt 0 ]; do
  case "$1" in
    --target) [ $# -ge 2 ] || usage; target=$2; shift 2 ;;
    --wheels) [ $# -ge 2 ] || usage; wheels=$2; shift 2 ;;
    --sdist) [ $# -ge 2 ] || usage; sdist=$2; shift 2 ;;
    *) usage ;;
  esac
done
[ -n "$target" ] || usage
PY=${PYTHON:-python3}
VERSION=$(sed -n 's/^llama-cpp-python==\([^ ]*\).*/\1/p' requirements-llamacpp.txt)
cache=${QB_WHEEL_CACHE:-$HOME/.cache/quantbench/llama-cpp-python-$VERSION}
sdist=${sdist:-$cache/llama_cpp_python-$VERSION.tar.gz}
[ -f "$sdist" ] || { echo "no sdist at $sdist: bring llama_cpp_python-$VERSION.tar.gz (--sdist FILE)" >&2; exit 1; }

nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[ -x "$nvcc" ] || { echo "no nvcc (CUDACXX, PATH, /usr/local/cuda/bin): the CUDA build needs the CUDA compiler" >&2; exit 1; }
nvcc=$(readlink -f "$nvcc")
# a wrapper script (exec /usr/local/cuda-13.0/bin/nvcc "$@") resolves to itself: take the toolkit it calls
real=$(sed -n 's/^exec \(\/[^ ]*nvcc\) .*/\1/p' "$nvcc" 2>/dev/null | head -1)
[ -n "$real" ] && nvcc=$(readlink -f "$real")
cuda_home=$(dirname "$(dirname "$nvcc")")
echo "nvcc: $nvcc ($("$nvcc" --version | tail -1))" >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tools="$work/buildtools"
if [ -n "$wheels" ]; then
  # the build backend (and cmake, ninja where brought) from the wheels, offline, into a folder of its own
  want=(scikit-build-core pathspec packaging)
  for opt in cmake ninja diskcache; do
    ls "$wheels"/"$opt"-*.whl >/dev/null 2>&1 && want+=("$opt")
  done
  "$PY" -m pip install -q --disable-pip-version-check --no-index --find-links "$wheels" --target "$tools" "${want[@]}"
fi
export PYTHONPATH="$tools${PYTHONPATH:+:$PYTHONPATH}"
PATH="$tools/bin:$PATH"
"$PY" -c "import scikit_build_core" 2>/dev/null || {
  echo "scikit-build-core is not importable: pass --wheels WHEELS with its wheels (see this script's header)" >&2
  exit 1
}
if "$PY" -c "import cmake" 2>/dev/null; then
  echo "cmake: the cmake wheel's, $("$PY" -c 'import cmake, os; print(cmake.CMAKE_BIN_DIR)')/cmake" >&2
else
  echo "cmake: $(command -v cmake) ($(cmake --version | head -1))" >&2
fi

cmake_args=(
  -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF
  -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_FA_ALL_QUANTS=OFF
  "-DGGML_CUDA_FA_QUANTS=q4_0-q4_0;q8_0-q8_0;f16-f16;bf16-bf16" -DGGML_CUDA_NCCL=OFF
  "-DCMAKE_CUDA_COMPILER=$nvcc"
)
# cuBLAS: in the toolkit, or the Python's nvidia/cu13 packages (versioned .so only, which find_library skips)
has_lib() { compgen -G "$1/lib64/lib$2.so" >/dev/null || compgen -G "$1/targets/x86_64-linux/lib/lib$2.so" >/dev/null; }
if ! has_lib "$cuda_home" cublas; then
  cublas=${QB_CUBLAS_DIR:-$("$PY" -c '
import glob, os
import nvidia
for root in nvidia.__path__:
    for lib in sorted(glob.glob(os.path.join(root, "*", "lib", "libcublas.so.*"))):
        print(os.path.dirname(os.path.dirname(lib))); raise SystemExit
' 2>/dev/null || true)}
  if [ -z "$cublas" ] || [ ! -f "$cublas/include/cublas_v2.h" ]; then
    echo "no cuBLAS: neither in $cuda_home nor in $PY's nvidia packages; set QB_CUBLAS_DIR" >&2
    exit 1
  fi
  sos=("$cublas"/lib/libcublas.so.*) lts=("$cublas"/lib/libcublasLt.so.*)
  so=${sos[0]} lt=${lts[0]}
  echo "cuBLAS: $so" >&2
  # ggml-cuda includes cublas_v2.h from its .cu files only
  cmake_args+=("-DCUDA_cublas_LIBRARY=$so" "-DCUDA_cublasLt_LIBRARY=$lt" "-DCMAKE_CUDA_FLAGS=-I$cublas/include")
fi
# The driver API (llama.cpp's virtual-memory pool): the toolkit's stub, else the driver's own libcuda.so.1
if ! compgen -G "$cuda_home/lib64/stubs/libcuda.so" >/dev/null \
    && ! compgen -G "$cuda_home/targets/x86_64-linux/lib/stubs/libcuda.so" >/dev/null; then
  driver=$( (ldconfig -p 2>/dev/null | sed -n 's/.*libcuda\.so\.1 .*=> \(.*\)/\1/p'; \
             ls /usr/local/nvidia/lib64/libcuda.so.1 /usr/lib/x86_64-linux-gnu/libcuda.so.1 2>/dev/null) | head -1 \
             || true)
  if [ -n "$driver" ]; then
    echo "CUDA driver library: $driver" >&2
    cmake_args+=("-DCUDA_cuda_driver_LIBRARY=$driver")
  else
    echo "no libcuda (driver or stub) to link: building with GGML_CUDA_NO_VMM=ON" >&2
    cmake_args+=(-DGGML_CUDA_NO_VMM=ON)
  fi
fi

tar -xzf "$sdist" -C "$work"
src="$work/llama_cpp_python-$VERSION"
# as scripts/setup-llamacpp.sh: llama-cpp-python forces llama.cpp's "common" library on; nothing installed links it
sed -i 's/set(LLAMA_BUILD_COMMON ON CACHE BOOL "Build llama.cpp common library" FORCE)/set(LLAMA_BUILD_COMMON OFF CACHE BOOL "" FORCE)/' \
  "$src/CMakeLists.txt"
echo "building llama-cpp-python $VERSION with CUDA for sm_90 on $(nproc) cores (minutes)..." >&2
start=$(date +%s)
CUDACXX="$nvcc" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) CMAKE_ARGS="${cmake_args[*]}" \
  "$PY" -m pip wheel --disable-pip-version-check --no-build-isolation --no-deps -w "$work/wheel" "$src" >&2
seconds=$(( $(date +%s) - start ))
wheel=$(ls "$work"/wheel/llama_cpp_python-"$VERSION"-*.whl)
mkdir -p "$target"
"$PY" -m pip install -q --disable-pip-version-check --no-deps --no-index --upgrade --target "$target" "$wheel"
if [ -n "$wheels" ] && ls "$wheels"/diskcache-*.whl >/dev/null 2>&1 && ! "$PY" -c "import diskcache" 2>/dev/null; then
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-index --target "$target" "$wheels"/diskcache-*.whl
fi
cp "$wheel" "$target"/  # the wheel itself, for another node of the same image
conv="$target/llama-cpp-convert"
rm -rf "$conv" && mkdir -p "$conv"
cp -r "$src/vendor/llama.cpp/convert_hf_to_gguf.py" "$src/vendor/llama.cpp/conversion" \
  "$src/vendor/llama.cpp/gguf-py" "$src/vendor/llama.cpp/LICENSE" "$conv"/
echo "built in $seconds s (wall, $(nproc) cores): $(basename "$wheel"), installed into $target" >&2
PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}" "$PY" -c "
import llama_cpp
print('llama-cpp-python', llama_cpp.__version__, 'from', llama_cpp.__file__)
print('llama_supports_gpu_offload:', llama_cpp.llama_supports_gpu_offload())
print(llama_cpp.llama_print_system_info().decode())" || {
  echo "the build does not import: if a CUDA library is not found, add its folder to LD_LIBRARY_PATH" >&2; exit 1; }
echo "build_seconds=$seconds"
