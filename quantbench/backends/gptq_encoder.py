"""GPTQ on an encoder (an AutoModel of any modality, not a causal LM): GPTQModel's own API first, then
transformers' GPTQConfig, which is how the comparison quantized with GPTQ. The GPTQ backend's
quantize_encoder; the encoder workflow (quantbench.encoder) calls it through the backend."""
from __future__ import annotations

from pathlib import Path

from quantbench import gptqmodel_run
from quantbench.library_refusal import Unsupported


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
