"""Quantize a model folder with one method (also used to re-quantize merged models)."""
import logging
import time

from quantbench import calibration_draw, cli
from quantbench.atomic import atomic_dir
from quantbench.backends import calibrated
from quantbench.backends import get as get_backend
from quantbench.data import load_texts
from quantbench.modelio import RunContext, folder_size_mb, write_meta
from quantbench.records import Recorder, load_records

p = cli.parser(__doc__)
p.add_argument("--src", required=True, help="full-precision model folder or hub id")
p.add_argument("--calibration", help="calibration data (JSON lines file) for GPTQ and AWQ")
p.add_argument("--sensitivity", nargs="*", default=[], help="sensitivity records (a mixed-precision method)")
p.add_argument("--size-of", help="quantize record whose measured size is a mixed-precision budget")
p.add_argument("--out", required=True)
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
method = params["method"]
backend = get_backend(method["backend"])
texts, draw = [], None
if calibrated(method["backend"]):
    # replicate k of a method (quantbench.calibration_draw) samples its texts from a wider pool
    k = params.get("replicate", 1)
    wanted = params["calibration_samples"]
    pool = load_texts(args.calibration or params["calibration"],
                      wanted if k == 1 else calibration_draw.pool_size(wanted))
    if k != 1 and len(pool) <= wanted:
        logging.warning("replicate %d: the calibration data holds %d texts, no more than the %d asked for: "
                        "its draw differs only in order and seed", k, len(pool), wanted)
    texts, draw = calibration_draw.draw(pool, wanted, params["config_seed"] if k != 1 else params["seed"], k)
    if len(texts) < wanted:
        logging.warning("calibration set has %d texts, fewer than the %d asked for", len(texts), wanted)
ctx = RunContext(device=params["device"], dtype_name=params["dtype"], seed=params["seed"],
                 calibration_texts=texts, calibration_seq_len=params.get("calibration_seq_len", 512),
                 sensitivity=load_records(args.sensitivity),
                 size_of=load_records([args.size_of])[0] if args.size_of else None)
rec = Recorder("quantize", params["variant"], params, params["device"], params["seed"])
logging.info("quantizing %s -> %s: %s", args.src, args.out, backend.describe(method["params"]))
with atomic_dir(args.out) as tmp:
    t0 = time.perf_counter()
    extra = backend.quantize(args.src, tmp, method["params"], ctx)
    seconds = time.perf_counter() - t0
    write_meta(tmp, {"method": method["name"], "backend": method["backend"], "params": method["params"],
                     "source": args.src})
    size = folder_size_mb(tmp)
# a mix's nominal average is its allocation's (the method's own figure is only its budget)
nominal = (extra.get("mix") or {}).get("nominal_average_bits") or backend.bits_per_weight(method["params"])
# llama.cpp's mixes and fallbacks make a GGUF type's nominal bits approximate, and a GPTQ file holds
# zero points and act-order indices beside the scales: their files are measured
bits = extra.pop("measured_bits_per_weight", nominal)
rec.record["metrics"] = {"quantize_s": seconds, "size_on_disk_mb": size, "bits_per_weight": bits,
                         **({"nominal_bits_per_weight": nominal} if bits != nominal else {}), **extra}
if draw is not None:
    rec.record["calibration_draw"] = draw
rec.write(args.record)
