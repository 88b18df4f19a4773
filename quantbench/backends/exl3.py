"""EXL3 (ExLlamaV3): a QTIP-style trellis-coded weight format at 2 to 8 bits per weight, quantized by
exllamav3's own converter and run by its own CUDA kernels. Written from exllamav3 1.6.5's source and
NOT YET RUN ON A GPU (docs/adding-a-backend.md, "EXL3"): nothing below has executed.

Quantize: exllamav3's converter, called in this process through the Python API its convert.py script
uses (exllamav3/conversion/convert_model.py: `parser`, `prepare`, `main`), on the base model folder
every method starts from, into the output folder (config.json gains `quantization_config` with
`quant_method: exl3`; tokenizer files are copied from the source by conversion/compile.py). The
converter decides each layer's rate itself (conversion/allocation.py: integer trellis rates, plus 1.5,
2.5 and 3.5 with its default mul1 codebook, chosen so that the decoder's linear layers average `bits`;
the output head gets `head_bits`; the embedding table stays unquantized).

Calibration: exllamav3 calibrates on its own data, and quantbench's calibration texts are not used
(CALIBRATED is false). conversion/calibration_data.py:get_default_calibration reads 250 rows of 2048
tokens (cal_rows, cal_cols) from text files inside the wheel (exllamav3/conversion/standard_cal_data:
c4, code, multilingual, technical, wiki and tiny .utf8) plus rows of random token ids, so it needs no
download and works offline. (Its --cal_data option would take a safetensors file of token rows
instead; not used here.)

Load: exllamav3's transformers integration (exllamav3/integration/transformers.py: `register()` adds
the `exl3` quantization method to transformers, whose from_pretrained then puts an `Exl3HfLinear`,
which calls exllamav3's kernels, in place of every nn.Linear the checkpoint holds EXL3 tensors for).
The model is a transformers causal LM, so the evaluate stage (logits, lm-eval) and the benchmark
(generate, static cache, compiled and captured steps) use it as they use every torch backend. Its
linear layers compute in float16 (Exl3HfLinear casts around each one); the rest runs in the config's dtype.

Widths that are not a multiple of 128: the converter pads every linear layer to multiples of 128
(modules/linear.py: `pad_to = 128`, `pad_out` zero-fills the padded weight before quantization), but
the integration sizes its layers from the transformers model, and the GEMM checks the input's width
against the trellis (exllamav3_ext/quant/exl3_gemm.cu: TORCH_CHECK_SHAPES(A, -1, B, 0, 16)). For such
layers (SmolLM2-135M: width 576) `_pad_to_trellis` does what exllamav3's own Linear.forward does: the
input zero-extended to the padded width (exact: the padded weight rows are zeros), the output cut back
to the layer's width.

The kernels are a C++/CUDA extension (exllamav3/ext.py) compiled with torch.utils.cpp_extension on the
first `import exllamav3` of an environment: that needs nvcc of torch's CUDA version and ninja, takes
minutes (about 170 CUDA sources), and is cached under ~/.cache/torch_extensions; the first quantize job
pays it (QUANTIZE_MINUTES leaves room). Later loads only check the build."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from quantbench.backends.base import Backend, register
from quantbench.loaded_model import LoadedModel

BITS_RANGE = (2.0, 8.0)  # bits per weight this backend offers (the converter's own floor is 1.0)
# The output head's rates the converter takes with its default codebook (mul1): whole bits, the
# half-integer rates, or 16 (stored unquantized); conversion/convert_model.py:prepare.
HEAD_BITS = [2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 16]
SPEC = {"bits": float, "head_bits": HEAD_BITS}
DEFAULTS = {"head_bits": 6}  # the converter's default (--head_bits)
CPU_ALTERNATIVE = "backend gguf (llama.cpp's 2- to 8-bit K-quants) or hqq"
PAD = 128  # the width the converter pads every linear layer to (modules/linear.py)
WORK_DIR = "exl3-work"  # the converter's working folder, inside the output until it is done
# The converter checkpoints its state every checkpoint_interval seconds (default 120: the hidden state
# of every calibration row, GBs for a 7B model) so that a job can resume; a quantbench job that fails
# starts over (quantbench.atomic), so it never checkpoints.
NEVER = 10**9
SETUP_HINT = "install requirements-exl3.txt (envs/exl3.yaml holds it; on an offline GPU node tools/gpu/exl3-wheels.txt)"


def _needs_cuda(device: str, what: str) -> None:
    if device != "cuda":
        raise RuntimeError(f"EXL3 {what} needs CUDA (exllamav3's converter and kernels have no CPU path), "
                           f"and this job runs on {device!r}; choose {CPU_ALTERNATIVE} for the CPU")


def _exllamav3():
    """exllamav3, imported (which builds or loads its CUDA extension), or a clear error."""
    try:
        import exllamav3
    except ImportError as err:
        raise RuntimeError(f"exllamav3 is not installed in this environment ({err}); {SETUP_HINT}") from err
    return exllamav3


def _local_folder(src: str) -> str:
    """The source model as a local folder: exllamav3 reads a directory (Config.from_directory). A hub id
    is taken from the Hugging Face cache (downloaded unless HF_HUB_OFFLINE), safetensors only."""
    if Path(src).is_dir():
        return str(src)
    from huggingface_hub import snapshot_download

    return snapshot_download(src, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "tokenizer*"])


# dtype sizes of the safetensors headers an EXL3 layer's tensors use (trellis int16, suh/svh float16,
# the 1-element codebook markers mcg/mul1 32-bit)
_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U64": 8, "I32": 4, "U32": 4, "I16": 2, "U16": 2,
          "I8": 1, "U8": 1, "BOOL": 1}
EXL3_TENSORS = ("trellis", "suh", "svh", "su", "sv", "mcg", "mul1")


def exl3_bits_per_weight(folder, weights: dict[str, int]) -> float:
    """Bits the EXL3 folder stores per weight of the layers in `weights` (name -> weights of the
    unpadded layer): trellis, sign/scale vectors and codebook markers, padding included."""
    from quantbench.stored_bits import _headers

    headers = _headers(folder)
    stored = 0
    for name in weights:
        if f"{name}.trellis" not in headers:
            raise KeyError(f"{folder}: {name} has no EXL3 trellis (left unquantized?)")
        for t in EXL3_TENSORS:
            h = headers.get(f"{name}.{t}")
            if h:
                n = 1
                for d in h["shape"]:
                    n *= d
                stored += _BYTES[h["dtype"]] * n
    return 8 * stored / sum(weights.values())


def _pad_to_trellis(model) -> int:
    """Make the integration's layers whose trellis is wider than the transformers layer (widths not a
    multiple of 128, padded by the converter) compute as exllamav3's own Linear.forward does: input
    zero-extended to the trellis's width, output cut back to the layer's. Returns how many there were."""
    import types

    import torch
    from exllamav3.integration.transformers import Exl3HfLinear
    from exllamav3.modules.quant.exl3 import LinearEXL3

    def forward(self, x):
        dtype = x.dtype
        h = torch.nn.functional.pad(x.half(), (0, self.inner.in_features - x.shape[-1]))
        y = self.inner.forward(h.contiguous(), {})
        # contiguous: transformers views the projections into heads
        return y[..., :self.out_features].contiguous().to(dtype)

    padded = 0
    for module in model.modules():
        if not isinstance(module, Exl3HfLinear):
            continue
        rows, cols = module.trellis.shape[0] * 16, module.trellis.shape[1] * 16  # tiles of 16 x 16 weights
        if (rows, cols) == (module.in_features, module.out_features):
            continue
        if rows < module.in_features or cols < module.out_features or rows % PAD or cols % PAD:
            raise ValueError(f"{module.key}: trellis of {rows}x{cols} weights does not pad the "
                             f"{module.in_features}x{module.out_features} layer to multiples of {PAD}")
        # the arguments Exl3HfLinear.finalize passes, at the trellis's (padded) width
        module.inner = LinearEXL3(config=None, in_features=rows, out_features=cols, scale=None, su=module.su,
                                  sv=module.sv, suh=module.suh, svh=module.svh, trellis=module.trellis,
                                  mcg=module.mcg, mul1=module.mul1, bias=module.bias, out_dtype=torch.float16,
                                  transformers_fix=True, key=module.key)
        module.forward = types.MethodType(forward, module)
        padded += 1
    return padded


@register("exl3")
class EXL3(Backend):
    SPEC = SPEC
    DEFAULTS = DEFAULTS
    REQUIRED = ("bits",)
    DESCRIPTIONS = {
        "bits": f"bits per weight the decoder's linear layers average, {BITS_RANGE[0]} to {BITS_RANGE[1]} "
                "(exllamav3's converter sets each layer's rate to meet it); exllamav3 calibrates on its own "
                "built-in data, so quantbench's calibration texts are not used",
        "head_bits": "bits per weight of the output head (16: left unquantized)",
    }
    CPU_ALTERNATIVE = CPU_ALTERNATIVE
    LABEL = "EXL3"
    COLOR = "#393b79"
    MARKER = ">"
    EVALUATE_ENV = "exl3"  # lm-eval must load exllamav3's layers: its env carries lm-eval too
    # fixed: the first job of an environment compiles exllamav3's CUDA extension (minutes); per billion
    # parameters: the converter's 250 x 2048 calibration tokens through every layer (not yet measured)
    QUANTIZE_MINUTES = (60, 15)

    def describe(self, params: dict) -> str:
        return f"EXL3 {params['bits']} bpw (head {params['head_bits']}), exllamav3 trellis"

    def needs_cuda(self, params: dict) -> str | None:
        return "EXL3 runs on CUDA only (exllamav3's converter and kernels are a CUDA extension with no CPU path)"

    def problems(self, params: dict, model_dims: list[int] | None) -> list[str]:
        bits = params["bits"]
        low, high = BITS_RANGE
        if not low <= bits <= high:
            return [f"bits: {bits} is outside EXL3's range; allowed: {low} to {high} bits per weight"]
        return []

    def untrainable(self, params: dict) -> str | None:
        return ("PEFT has no LoRA layer for exllamav3's Exl3HfLinear (not an nn.Linear), so LoRA cannot target "
                "the EXL3 layers")

    def bits_per_weight(self, params: dict) -> float:
        # The converter's budget for the decoder's linear layers; their sign vectors (16 bits per input
        # and per output feature) add 0.008 bits at width 4096. The quantize record measures the files.
        return float(params["bits"])

    def quantize(self, src: str, dst: Path, params: dict, ctx) -> dict:
        from quantbench import stored_bits

        _needs_cuda(ctx.device, "quantization")
        folder = _local_folder(src)
        if not any(Path(folder).glob("*.safetensors")):
            raise ValueError(f"{folder}: no .safetensors files; exllamav3's converter reads safetensors only")
        _exllamav3()
        from exllamav3.conversion.convert_model import main as convert
        from exllamav3.conversion.convert_model import parser, prepare

        work = Path(dst) / WORK_DIR
        argv = ["--in_dir", folder, "--out_dir", str(dst), "--work_dir", str(work),
                "--bits", str(float(params["bits"])), "--head_bits", str(params["head_bits"]),
                "--devices", "0",  # the job's GPU: quantbench sets CUDA_VISIBLE_DEVICES
                "--checkpoint_interval", str(NEVER)]
        args, job_state, ok, err = prepare(parser.parse_args(argv))
        if not ok:  # convert.py prints the error and exits 0; here it stops the job
            raise ValueError(f"exllamav3's converter refused {' '.join(argv)}: {err}")
        convert(args, job_state)
        shutil.rmtree(work)
        qcfg = json.loads((Path(dst) / "config.json").read_text())["quantization_config"]
        out = {"exllamav3_version": qcfg.get("version"),
               "exl3_allocated_bits": qcfg.get("bits"),  # the converter's rate allocation, head left out
               "exl3_head_bits": qcfg.get("head_bits"),
               "exl3_codebook": qcfg.get("codebook"),
               "exl3_calibration": qcfg.get("calibration")}  # its own rows x columns of tokens
        try:
            out["measured_bits_per_weight"] = exl3_bits_per_weight(dst, stored_bits.block_linear_weights(folder))
        except (KeyError, FileNotFoundError) as err:  # names the converter changed: the record says so,
            out["exl3_measure_error"] = str(err)      # and the model it wrote stays
        return out

    def load(self, path: str, params: dict, ctx):
        from importlib.metadata import version

        _needs_cuda(ctx.device, "inference")
        _exllamav3()
        from exllamav3.integration.transformers import Exl3HfLinear, register
        from transformers import AutoModelForCausalLM

        register()  # transformers then reads quant_method exl3 from config.json (idempotent)
        model = AutoModelForCausalLM.from_pretrained(path, device_map=ctx.device, dtype=ctx.dtype)
        padded = _pad_to_trellis(model)
        layers = sum(isinstance(m, Exl3HfLinear) for m in model.modules())
        if not layers:
            raise RuntimeError(f"{path}: transformers loaded no EXL3 layer (is register() in effect?)")
        return LoadedModel.of(model.eval(), {
            "kernel": Exl3HfLinear.__name__, "exllamav3_version": version("exllamav3"),
            "compute_dtype": "float16", "model_dtype": str(ctx.dtype).removeprefix("torch."),
            "exl3_layers": layers, "exl3_padded_layers": padded})
