"""Quantize a random-weight encoder of another modality with one method and run it on a batch of
synthetic inputs of its kind, or record where and why the library refused (outcome: unsupported)."""
from transformers import AutoConfig

from quantbench import cli
from quantbench.encoder import probe, random_encoder
from quantbench.encoder.modality import synthetic_inputs
from quantbench.records import Recorder

p = cli.parser(__doc__)
p.add_argument("--model", required=True, help="the random-weight encoder folder (encoder_random_build.py)")
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
method, device, seed = params["method"], params["device"], params["seed"]
config = AutoConfig.from_pretrained(args.model)
rec = Recorder("encoder_probe", method["name"], params, device, seed)
rec.record.update(encoder=params["encoder"], **random_encoder.describe(config))
result = probe.run(args.model, method, device, synthetic_inputs(config, params["random_batch_size"], seed),
                   [synthetic_inputs(config, 1, seed + 1 + i) for i in range(probe.CALIBRATION_ROWS)],
                   # GPTQ's sequence length setting; a non-text model's inputs come whole
                   params["max_length"], params["warmup"], params["repeats"])
rec.record.update(result)
rec.write(args.record)
