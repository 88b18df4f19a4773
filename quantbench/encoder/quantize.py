"""Quantize an encoder folder with one method through the method's own library, or say why that
library refused: each backend is tried for real on the encoder (AutoModel, not a causal-LM class),
whatever its modality (text, vision, audio: quantbench.encoder.modality)."""
from __future__ import annotations

import traceback
from pathlib import Path

from quantbench import gptqmodel_run
from quantbench.backends import UNQUANTIZED, having
from quantbench.backends import get as get_backend
from quantbench.encoder import modality

UNSUPPORTED_FILE = "unsupported.json"


class Unsupported(Exception):
    """The backend's library refused this encoder; carries its real error."""

    def __init__(self, error: BaseException, earlier: dict | None = None):
        self.error, self.earlier = error, earlier or {}
        frames = traceback.extract_tb(error.__traceback__)
        # Where the refusal came from (e.g. gptqmodel/models/auto.py), so a reader can tell a library's
        # limitation from a bug of ours; the library frames on the way say which library's code path
        # it was (GPTQModel's loader raising through transformers' tokenizer code, say).
        self.raised_in = frames[-1].filename.split("site-packages/")[-1] if frames else "?"
        self.library_frames = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}"
                               for f in frames if "site-packages/" in f.filename]
        super().__init__(f"{type(error).__name__}: {error}")

    def summary(self) -> dict:
        text = str(self.error)
        # GPTQModel appends the whole module tree to its message; the first line is the reason.
        first = text.splitlines()[0].removesuffix("(") if text else ""
        return {"error_type": type(self.error).__name__, "error": first[:400], "error_full": text[:2000],
                "raised_in": self.raised_in, "library_frames": self.library_frames[:12],
                **({"earlier_refusals": self.earlier} if self.earlier else {})}


def _tokenizer(src: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(src)


def _gptq_model(src: str, dst: Path, qconfig, device: str, calibration: list[dict], seq_len: int) -> dict:
    """GPTQModel's own API, as the causal-LM workflow uses it."""
    gptqmodel_run.quantized(src, qconfig, calibration, device, seq_len).save(str(dst))
    return {"route": "gptqmodel"}


def block_name(model) -> str | None:
    """The repeated transformer blocks (a ModuleList such as BERT's `encoder.layer`): what GPTQ
    quantizes one at a time."""
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layer", "layers", "h", "blocks"):
            return name
    return None


def _gptq_transformers(src: str, dst: Path, params: dict, device: str, calibration: list, seq_len: int,
                       text: bool) -> dict:
    """transformers' GPTQConfig (optimum's GPTQ quantizer, GPTQModel's kernels) on AutoModel. Its
    block patterns are those of decoder LMs; an encoder needs block_name_to_quantize named. A model
    of another modality gets its own inputs as the calibration rows (optimum takes pre-tokenized
    rows as they are), so whatever refuses is the library, not a missing tokenizer."""
    import json

    from transformers import AutoModel, GPTQConfig

    block = block_name(AutoModel.from_pretrained(src))
    cfg = GPTQConfig(bits=params["bits"], group_size=params["group_size"], desc_act=params["desc_act"],
                     sym=params["sym"], damp_percent=params["damp_percent"], dataset=calibration,
                     tokenizer=_tokenizer(src) if text else None, model_seqlen=seq_len,
                     block_name_to_quantize=block)
    model = AutoModel.from_pretrained(src, quantization_config=cfg, device_map=device)
    model.save_pretrained(dst)
    # save_pretrained writes block_name_to_quantize as null (and the calibration texts in full), so
    # the folder would not load again: store the block name, drop the texts.
    config_file = dst / "config.json"
    saved = json.loads(config_file.read_text())
    saved["quantization_config"].update(block_name_to_quantize=block, dataset=None)
    config_file.write_text(json.dumps(saved, indent=2))
    return {"route": "transformers-gptqconfig", "block_name_to_quantize": block}


def gptq_encoder(src: str, dst: Path, params: dict, device: str, calibration: list, seq_len: int,
                 text: bool, qconfig) -> dict:
    """GPTQModel first (the project's GPTQ backend, whose QuantizeConfig for `params` the backend
    passes in as `qconfig`); where it refuses the architecture, transformers' GPTQConfig, which is how
    the comparison quantized with GPTQ. Both refusals are kept. Calibration: texts for a text encoder,
    rows of the model's own inputs for another modality."""
    rows = gptqmodel_run.calibration_rows(_tokenizer(src), calibration, seq_len) if text else calibration
    try:
        return _gptq_model(src, dst, qconfig, device, rows, seq_len)
    except (ValueError, TypeError, NotImplementedError, KeyError, AttributeError) as err:
        first = Unsupported(err).summary()
    try:
        extra = _gptq_transformers(src, dst, params, device, calibration, seq_len, text)
    except (ValueError, TypeError, NotImplementedError, KeyError, AttributeError, RuntimeError) as err:
        raise Unsupported(err, earlier={"gptqmodel": first}) from err
    return {**extra, "gptqmodel_refusal": first}


def quantize(src: str, dst: Path, method: dict, device: str, calibration: list, seq_len: int) -> dict:
    """Write the quantized encoder (with its tokenizer, for text) to dst; raise Unsupported when the
    backend's library refuses the encoder. GPTQ calibrates on `calibration`: the configured sentences
    for a text encoder, dicts of input tensors (modality.synthetic_inputs) for another modality."""
    backend, params = method["backend"], method["params"]
    text = modality.of_folder(src) == "text"
    try:
        if not get_backend(backend).encodes:
            raise ValueError(f"backend {backend!r} has no encoder path; allowed: {', '.join(having('encodes'))}")
        extra = get_backend(backend).quantize_encoder(src, dst, params, device, calibration, seq_len, text)
    except (ValueError, TypeError, NotImplementedError, KeyError, AttributeError, RuntimeError) as err:
        if backend == UNQUANTIZED:
            raise  # the unquantized model must load: a failure there is ours, not a library's limit
        raise Unsupported(err) from err
    if text:
        _tokenizer(src).save_pretrained(dst)
    return extra
