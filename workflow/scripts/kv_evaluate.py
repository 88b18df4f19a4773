"""One (weights, KV cache) pair at long context: KL, top-1 agreement and perplexity ratio per context length
and position bucket against the baseline with the plain cache, the cache's measured bytes per token, and the
decode step time and peak memory at a long context."""
import torch

from quantbench import cli, kv_config, kv_cost, kv_quality, memory
from quantbench.backends import get as get_backend
from quantbench.kv_cache import cache_bytes, make_cache
from quantbench.loading import load_model
from quantbench.modelio import RunContext, read_meta
from quantbench.records import Recorder

p = cli.parser(__doc__)
p.add_argument("--model", required=True)
p.add_argument("--reference", required=True)
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
kv = params["kv_cache"]
spec = kv_config.KVCache(**params["cache"]) if params["cache"] else None
ctx = RunContext(device=params["device"], dtype_name=params["dtype"], seed=params["seed"])
rec = Recorder("kv_evaluate", params["kv_variant"], params, ctx.device, ctx.seed)
ref = torch.load(args.reference)
contexts, chunk = kv["contexts"], kv["chunk"]
edges = kv_quality.buckets(contexts)
longest = max(contexts)
meta = read_meta(args.model)
gguf = get_backend(meta["backend"]).RUNTIME == "llama.cpp"

if gguf:
    from quantbench import kv_llamacpp, llamacpp

    n_ctx = max(longest, kv["decode_context"] + kv["decode_steps"])
    model = kv_llamacpp.LlamaCppKV(args.model, torch.get_num_threads(), n_ctx, chunk, spec,
                                   n_gpu_layers=llamacpp.gpu_layers(meta["params"]))
    weights_bytes = model.file_weights_mb * 2**20
    kernel = f"llama.cpp (flash attention, K {model.cache_types['type_k']}, V {model.cache_types['type_v']})"
    if model.n_gpu_layers:
        kernel += ", every layer on the GPU"

    def passes(windows, measure):
        for i in range(len(windows)):
            yield kv_llamacpp.chunked_logprobs(model, windows[i], chunk)
            if measure and i == 0:  # the cache still holds the whole first window
                held["total_bytes"] = model.state_bytes()
else:
    model, _, info = load_model(args.model, ctx)
    weights_bytes = memory.model_weights_mb(model) * 2**20
    kernel = info["kernel"]

    def passes(windows, measure):
        for i in range(len(windows)):
            cache = make_cache(spec, model.config)
            yield kv_quality.chunked_logprobs(model, windows[i], chunk, cache)
            if measure and i == 0:
                held.update(cache_bytes(cache))

held = {}
quality = {}
for length in contexts:
    r = ref["contexts"][length]
    blocks = kv_quality.score_windows(passes(r["windows"], length == longest), r["summary"], edges, chunk)
    quality[str(length)] = {b: {**kv_quality.bucket_metrics(v), "blocks": v} for b, v in blocks.items()}
    print(f"{params['kv_variant']}: context {length}: "
          + ", ".join(f"[{b}) KL {m['kl_mean']:.4g}" for b, m in quality[str(length)].items()), flush=True)

bytes_per_token = held["total_bytes"] / longest
decode_prompt = ref["contexts"][longest]["windows"][0]
if decode_prompt.numel() < kv["decode_context"]:
    decode_prompt = torch.cat([w for w in ref["contexts"][longest]["windows"]])
decode_prompt = decode_prompt[: kv["decode_context"]]
if gguf:
    out = kv_llamacpp.decode_steps(model, decode_prompt.tolist(), kv["decode_steps"])
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    decode = [{"batch_size": 1, "status": "ok", "context": int(decode_prompt.numel()),
               **kv_cost.step_stats(out["step_s"]), "peak_memory_mb": rss,
               "peak_memory_note": "process-lifetime peak resident set (llama.cpp allocates its cache for n_ctx)"
               + ("; host memory only: the layers and their cache are on the GPU" if model.n_gpu_layers else "")}]
    batch_reason = model.batch_reason
else:
    decode = [kv_cost.torch_decode(model, spec, decode_prompt, b, kv["decode_steps"], chunk)
              for b in kv["decode_batch_sizes"]]
    batch_reason = None

rec.record["kernel"] = kernel
if gguf:
    rec.record["load"] = model.info()  # where llama.cpp ran: n_gpu_layers and its build's backends
rec.record["reference"] = ref["variant"]
rec.record["metrics"] = {
    "quality": quality,
    "kv_bytes_per_token": bytes_per_token,
    "kv_bytes_measured_at_tokens": longest,
    "kv_bytes_breakdown": held,
    "weights_bytes": weights_bytes,
    "decode": decode,
    "max_context_fits_derived": kv_cost.fits(weights_bytes, bytes_per_token, kv["fit_memory_gb"]),
}
if batch_reason and len(kv["decode_batch_sizes"]) > 1:
    rec.record["metrics"]["decode_batch_note"] = batch_reason
rec.write(args.record)
if gguf:
    model.close()
