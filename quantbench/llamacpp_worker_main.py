"""The entry point of llama.cpp's worker process (quantbench/llamacpp_worker.py): `python -m
quantbench.llamacpp_worker_main FD`.

llama.cpp's shared libraries are loaded here before anything imports numpy. A CUDA build of llama.cpp
made on a GPU node died with SIGSEGV in its tokenizer's set-up (init_tokenizer, in every model load, even
vocab_only) in any process that had imported numpy before those libraries were loaded, and loaded fine
when they came first (numpy imported after them, as llama_cpp's own package does); records in
results/reference/h100/smollm2-135m-cuda-gguf-gpu/worker-check/.
"""
import sys
from multiprocessing.connection import Connection

import llama_cpp  # noqa: F401 - first, before numpy: see above

from quantbench.llamacpp_worker import serve  # after llama.cpp's libraries

serve(Connection(int(sys.argv[1])))
