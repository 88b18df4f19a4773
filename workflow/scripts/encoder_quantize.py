"""Quantize an encoder with one method, or record the library's refusal (outcome: unsupported)."""
import json
import logging
import time

from quantbench import cli, package_paths
from quantbench.atomic import atomic_dir
from quantbench.backends import calibrated
from quantbench.encoder.quantize import UNSUPPORTED_FILE, Unsupported, quantize
from quantbench.encoder.sentences import read_sentences
from quantbench.modelio import folder_size_mb, write_meta
from quantbench.records import Recorder

p = cli.parser(__doc__)
p.add_argument("--out", required=True)
p.add_argument("--record", required=True)
args = p.parse_args()
params = cli.setup(args)
method = params["method"]
src = package_paths.resolve(params["model_path"])
calibration, overlap = [], False
if calibrated(method["backend"]):
    # Calibrate on the sentences after the evaluated ones, so GPTQ is not scored on its own calibration
    # set; a file too short for that reuses the first ones and says so in the record.
    wanted, evaluated = params["calibration_samples"], params["max_sentences"]
    texts = read_sentences(params["sentences"], evaluated + wanted)
    calibration = texts[evaluated:]
    if len(calibration) < min(8, wanted):
        calibration, overlap = texts[:wanted], True
rec = Recorder("quantize", method["name"], params, params["device"], params["seed"])
rec.record["outcome"] = "ok"
with atomic_dir(args.out) as tmp:
    t0 = time.perf_counter()
    try:
        extra = quantize(src, tmp, method, params["device"], calibration, params["max_length"])
        rec.record["metrics"] = {"quantize_s": time.perf_counter() - t0, "size_on_disk_mb": folder_size_mb(tmp),
                                 **extra, **({"calibration_overlaps_evaluation": overlap} if calibration else {})}
    except Unsupported as refusal:
        logging.warning("%s refused the encoder: %s", method["backend"], refusal)
        info = refusal.summary()
        rec.record.update(outcome="unsupported", reason=f"{info['error_type']}: {info['error']}", error=info)
        # The folder marks the refusal, so no later stage mistakes it for a model.
        (tmp / UNSUPPORTED_FILE).write_text(json.dumps(info, indent=2))
    write_meta(tmp, {"method": method["name"], "backend": method["backend"], "params": method["params"],
                     "source": params["model_path"], "kind": "encoder", "outcome": rec.record["outcome"]})
rec.write(args.record)
