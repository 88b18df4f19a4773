# Run as-is on the node after tools/gpu/llamacpp_worker_check.py (same machine, same build and file), with
# PYTHONPATH=/tmp/lc:. (the build, then the repository) and torch's cuBLAS folder on LD_LIBRARY_PATH;
# it printed in_process_no_vmm.json.
import time, json, numpy as np, torch
x = torch.randn(4096, 4096, device="cuda"); y = x @ x
from quantbench.llamacpp_engine import LlamaCppEngine
from quantbench.llamacpp_worker import WorkerEngine
f = "/tmp/lcparts/model.gguf"
ids = list(range(100, 164))
inp = LlamaCppEngine(f, 4, 256, -1)
a = inp.logits(ids, 64); t0 = time.perf_counter(); ga = inp.greedy(ids[:16], 32); ta = time.perf_counter() - t0
y2 = x @ x  # torch still works beside it
w = WorkerEngine(f, 4, 256, -1)
b = w.logits(ids, 64); t0 = time.perf_counter(); gb = w.greedy(ids[:16], 32); tb = time.perf_counter() - t0
print(json.dumps({"in_process_vs_worker_max_abs_diff": float(np.abs(a - b).max()), "greedy_same": ga == gb,
                  "greedy_32_s_in_process": round(ta, 4), "greedy_32_s_worker": round(tb, 4),
                  "torch_ok_after": bool(torch.allclose(y, y2))}))
w.close(); inp.close()
