"""Embed the sentences with one encoder; write the embeddings (the reference for the others) or,
with --reference, compare them with the reference and record quality, latency and memory."""
import statistics

import torch

from quantbench import cli
from quantbench.atomic import atomic_file, read_json
from quantbench.encoder import embed, similarity
from quantbench.encoder.sentences import read_sentences
from quantbench.memory import PeakMemory, model_weights_mb
from quantbench.records import Recorder
from quantbench.timing import repeat, summarize

p = cli.parser(__doc__)
p.add_argument("--model", required=True, help="encoder folder written by encoder_quantize.py")
p.add_argument("--quantize-record", required=True)
p.add_argument("--reference", help="the baseline's embeddings (.pt); without it, write --embeddings")
p.add_argument("--embeddings", help="where to write this model's embeddings (.pt)")
p.add_argument("--record")
args = p.parse_args()
params = cli.setup(args)
method, device = params["method"], params["device"]
quantized = read_json(args.quantize_record)
rec = Recorder("encoder", method["name"], params, device, params["seed"])
rec.record["outcome"] = quantized["outcome"]
if quantized["outcome"] != "ok":
    if args.embeddings:
        raise SystemExit(f"{args.model}: the baseline {method['name']!r} could not be built "
                         f"({quantized.get('reason')}); expected an unquantized encoder")
    rec.record.update(reason=quantized.get("reason"), error=quantized.get("error"))
    rec.write(args.record)
    raise SystemExit(0)

texts = read_sentences(params["sentences"], params["max_sentences"])
model, tokenizer, kernel = embed.load(args.model, method, device, quantized["metrics"].get("route"))
bs, max_len = params["batch_size"], params["max_length"]
with PeakMemory(device) as peak:
    emb = embed.embed(model, tokenizer, texts, bs, max_len, device)
if args.embeddings:
    with atomic_file(args.embeddings) as tmp:
        torch.save(emb, tmp)
if args.record:
    one_batch = texts[:bs]
    times = repeat(lambda: embed.embed_batch(model, tokenizer, one_batch, max_len, device), device,
                   warmup=params["warmup"], repeats=params["repeats"])
    timing = summarize(times)
    metrics = similarity.compare(emb, torch.load(args.reference))
    metrics.update(kernel=kernel, embed_ms_per_batch=timing["median_s"] * 1e3,
                   embed_iqr_over_median=timing["iqr_over_median"], embed_timing_s=timing,
                   sentences_per_s=len(one_batch) / statistics.median(times),
                   weights_memory_mb=model_weights_mb(model), **peak.result,
                   quantize_s=quantized["metrics"].get("quantize_s"), route=quantized["metrics"].get("route"),
                   gptqmodel_refusal=quantized["metrics"].get("gptqmodel_refusal"))
    rec.record["metrics"] = metrics
    rec.write(args.record)
