"""Greedy tokens of the static-cache decoders against eager generate (batch 1), for variants whose
benchmark records lack the check. Uses the decoder as the benchmark builds it (cache sized for the
config's longest generation) and drives it as the timed cells do before comparing.
Usage: python tools/gpu/check_decoders.py CONFIG VARIANT [VARIANT ...] > checks.json"""
import json
import sys

import yaml

from quantbench import benchmark
from quantbench.loading import load_model
from quantbench.modelio import RunContext

config = yaml.safe_load(open(sys.argv[1]))
gen = config["benchmark"]["generate"]
root = f"results/{config['model']['name']}/models"
ctx = RunContext(device="cuda", dtype_name="float16", seed=config["seed"])
out = []
for variant in sys.argv[2:]:
    model, tok, info = load_model(f"{root}/{variant}", ctx)
    avoid = {t for t in (tok.eos_token_id, tok.pad_token_id, tok.bos_token_id) if t is not None}
    for mode in (m for m in gen["modes"] if m in benchmark.DECODER_MODES):
        decoder = benchmark.DECODERS[mode](model, gen["prompt_len"] + benchmark.max_new_tokens(gen))
        ids, _ = benchmark.random_prompts(model.config.vocab_size, 1, gen["prompt_len"], "cuda", ctx.seed, avoid)
        try:
            for _ in range(2):  # as the timed cells: compile or capture, then replay
                decoder.generate(ids, min(gen["new_tokens"]))
            check = benchmark.fast_matches_eager(model, mode, model.config.vocab_size, "cuda", gen["prompt_len"],
                                                 min(gen["new_tokens"]), ctx.seed, avoid, tok.pad_token_id,
                                                 decoder=decoder)
        except Exception as exc:  # noqa: BLE001 - recorded
            check = {"mode": mode, "error": f"{type(exc).__name__}: {exc}"[:300]}
        out.append({"variant": variant, "kernel": info["kernel"], **check})
        print(out[-1], file=sys.stderr)
    del model
print(json.dumps(out, indent=1))
