"""A GGUF file as the base model: checked before any job runs, then turned into a full-precision
transformers folder that every method starts from.

The check reads the file's header and tensor table (GGUF v2/v3 layout, with the `gguf` package's
own type tables) and a few blocks of each tensor, dequantized by the `gguf` package, so a config
naming a 100 MB file validates in a fraction of a second; the conversion itself goes through
transformers' GGUF loader, which dequantizes every tensor."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

# Architectures the causal-LM workflow can load: transformers' GGUF mapping without its non-model
# sections and its encoder-decoders (those are not AutoModelForCausalLM).
_NOT_CAUSAL = {"general", "tokenizer", "t5", "umt5"}


def supported_architectures() -> list[str]:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return sorted(set(GGUF_SUPPORTED_ARCHITECTURES) - _NOT_CAUSAL)


class GGUFError(ValueError):
    """A GGUF file that cannot become a base model; the message is one line naming the file."""


@dataclass
class GGUFInfo:
    path: str
    version: int
    metadata: dict = field(default_factory=dict)   # scalar keys only; arrays are skipped
    array_lengths: dict = field(default_factory=dict)  # array keys (e.g. tokenizer.ggml.tokens) -> items
    tensor_types: dict = field(default_factory=dict)  # ggml type name -> count
    tensor_names: set = field(default_factory=set)
    size_bytes: int = 0
    parameters: int = 0  # elements over all tensors: the model's size once dequantized
    tensors: list = field(default_factory=list)  # (name, elements, dimensions, ggml type, offset in the data)
    data_start: int = 0  # where the tensor data section begins in the file

    @property
    def architecture(self) -> str | None:
        return self.metadata.get("general.architecture")

    def arch_key(self, name: str):
        return self.metadata.get(f"{self.architecture}.{name}")

    @property
    def layer_widths(self) -> list[int]:
        """Input widths of the linear layers: what a GPTQ group size must divide."""
        dims = [self.arch_key("embedding_length"), self.arch_key("feed_forward_length")]
        return [d for d in dims if isinstance(d, int)]

    @property
    def context_length(self) -> int | None:
        return self.arch_key("context_length")


class _Cursor:
    def __init__(self, f, path: str):
        self.f, self.path = f, path

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise GGUFError(f"{self.path}: truncated GGUF file (header ends early at byte {self.f.tell()})")
        return data

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.read(self.unpack("Q")).decode("utf-8", errors="replace")


def _scalar_formats():
    from gguf import GGUFValueType as T

    return {T.UINT8: "B", T.INT8: "b", T.UINT16: "H", T.INT16: "h", T.UINT32: "I", T.INT32: "i",
            T.FLOAT32: "f", T.BOOL: "?", T.UINT64: "Q", T.INT64: "q", T.FLOAT64: "d"}


class _Array:
    """An array value, skipped: only its length is kept."""

    def __init__(self, n: int):
        self.n = n


def _value(cur: _Cursor, vtype: int, formats: dict):
    from gguf import GGUFValueType as T

    vtype = T(vtype)
    if vtype == T.STRING:
        return cur.string()
    if vtype == T.ARRAY:
        item_type, n = T(cur.unpack("I")), cur.unpack("Q")
        if item_type in formats:  # fixed width: skip in one seek
            size = struct.calcsize("<" + formats[item_type])
            cur.f.seek(n * size, 1)
        else:
            for _ in range(n):
                _value(cur, item_type, formats)
        return _Array(n)
    return cur.unpack(formats[vtype])


def inspect(path: str | Path) -> GGUFInfo:
    """Header, metadata and tensor table of a GGUF file; raises GGUFError (one line) when it is missing,
    not GGUF, or shorter than its own tensor table says."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    path = Path(path)
    shown = str(path)
    if not path.is_file():
        raise GGUFError(f"{shown}: no such GGUF file" + (" (it is a folder)" if path.is_dir() else ""))
    size = path.stat().st_size
    formats = _scalar_formats()
    with open(path, "rb") as f:
        cur = _Cursor(f, shown)
        if f.read(4) != b"GGUF":
            raise GGUFError(f"{shown}: not a GGUF file (it does not start with the GGUF magic bytes)")
        version = cur.unpack("I")
        if version not in (2, 3):
            raise GGUFError(f"{shown}: GGUF version {version} is not supported; allowed: 2, 3")
        n_tensors, n_kv = cur.unpack("Q"), cur.unpack("Q")
        info = GGUFInfo(path=shown, version=version, size_bytes=size)
        try:
            for _ in range(n_kv):
                key = cur.string()
                value = _value(cur, cur.unpack("I"), formats)
                if isinstance(value, _Array):
                    info.array_lengths[key] = value.n
                else:
                    info.metadata[key] = value
            end = 0
            for _ in range(n_tensors):
                name = cur.string()
                info.tensor_names.add(name)
                dims = [cur.unpack("Q") for _ in range(cur.unpack("I"))]
                qtype = GGMLQuantizationType(cur.unpack("I"))
                offset = cur.unpack("Q")
                block, type_bytes = GGML_QUANT_SIZES[qtype]
                n = 1
                for d in dims:
                    n *= d
                end = max(end, offset + n // block * type_bytes)
                info.parameters += n
                info.tensors.append((name, n, len(dims), qtype, offset))
                info.tensor_types[qtype.name] = info.tensor_types.get(qtype.name, 0) + 1
        except (ValueError, KeyError) as err:  # an unknown enum value: garbage where a type should be
            raise GGUFError(f"{shown}: corrupt GGUF header ({err})") from None
        alignment = info.metadata.get("general.alignment", 32)
        data_start = -(-f.tell() // alignment) * alignment
    if data_start + end > size:
        raise GGUFError(f"{shown}: truncated GGUF file ({size} bytes; its tensor table needs "
                        f"{data_start + end})")
    info.data_start = data_start
    return info


# A sample of each tensor, read at evenly spaced places: enough that a file of random bytes shows a
# NaN or infinity in some tensor (each block's f16 scale is one with probability 1/32; each f32 value
# 1/256) and that no trained weight matrix reads as all zeros, while a 100 MB file is checked in a
# fraction of a second (the conversion job dequantizes everything, minutes later).
SAMPLE_PLACES = 8
SAMPLE_VALUES = 256  # per place, rounded up to whole blocks


def _sample(f, info: GGUFInfo, n: int, qtype, offset: int):
    """Dequantized values of one tensor at SAMPLE_PLACES places, or None for a type the gguf package
    cannot dequantize."""
    import numpy as np
    from gguf import GGML_QUANT_SIZES
    from gguf.quants import dequantize

    block, type_bytes = GGML_QUANT_SIZES[qtype]
    blocks = n // block
    per_place = min(blocks, -(-SAMPLE_VALUES // block))
    starts = sorted({(blocks - per_place) * i // max(SAMPLE_PLACES - 1, 1) for i in range(SAMPLE_PLACES)})
    values = []
    for start in starts:  # random bytes make NaN scales: expected here, and reported by the caller
        f.seek(info.data_start + offset + start * type_bytes)
        raw = np.frombuffer(f.read(per_place * type_bytes), dtype=np.uint8).reshape(per_place, type_bytes)
        try:
            with np.errstate(all="ignore"):
                values.append(np.asarray(dequantize(raw, qtype), dtype=np.float32).ravel())
        except NotImplementedError:
            return None
    return np.concatenate(values) if values else None


def _weights_problem(info: GGUFInfo) -> str | None:
    """The first tensor whose sampled values are not weights: NaN or infinity (random or corrupt
    bytes), or only zeros in a weight matrix (a file of the right size whose data was never written).
    One-dimensional tensors (norms, biases) may be zero, so only matrices are held to that."""
    import numpy as np

    with open(info.path, "rb") as f:
        for name, n, ndims, qtype, offset in info.tensors:
            values = _sample(f, info, n, qtype, offset)
            if values is None or values.size == 0:
                continue
            bad = int((~np.isfinite(values)).sum())
            if bad:
                return (f"tensor {name!r} ({qtype.name}) dequantizes to NaN or infinity in {bad} of {values.size} "
                        "values sampled: its bytes are not weights (random or corrupt data)")
            if ndims > 1 and not values.any():
                return (f"tensor {name!r} ({qtype.name}) holds only zeros in all {values.size} values sampled "
                        f"from {SAMPLE_PLACES} places: the file's weights were never written")
    return None


def _missing_tensors(info: GGUFInfo) -> list[str]:
    """What transformers' GGUF loader needs of any architecture: the token embedding, and tensors for
    each of the block_count layers the header declares (names are llama.cpp's: blk.<i>.*)."""
    names = info.tensor_names
    missing = [] if "token_embd.weight" in names else ["token_embd.weight"]
    blocks = info.arch_key("block_count")
    if not isinstance(blocks, int) or blocks < 1:
        return missing + [f"{info.architecture}.block_count (metadata)"]
    return missing + [f"blk.{i}.*" for i in range(blocks) if not any(n.startswith(f"blk.{i}.") for n in names)]


def check(path: str | Path) -> GGUFInfo:
    """inspect() plus what the conversion needs: an architecture transformers can load as a causal LM,
    the tensors of every layer the header declares, and a tokenizer (transformers builds it from the
    file's tokenizer.ggml.* keys)."""
    info = inspect(path)
    allowed = supported_architectures()
    if info.architecture not in allowed:
        raise GGUFError(f"{path}: GGUF architecture {info.architecture!r} cannot be loaded as a causal LM by "
                        f"transformers; allowed: {', '.join(allowed)}")
    missing = _missing_tensors(info)
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise GGUFError(f"{path}: the tensor table lacks {shown} ({len(info.tensor_names)} tensor(s) for "
                        f"block_count {info.arch_key('block_count')}); allowed: a complete model file")
    if not info.metadata.get("tokenizer.ggml.model") or not info.array_lengths.get("tokenizer.ggml.tokens"):
        raise GGUFError(f"{path}: no tokenizer (tokenizer.ggml.model and tokenizer.ggml.tokens are missing or "
                        "empty), which transformers builds the model's tokenizer from; allowed: a GGUF file "
                        "written with its tokenizer, as llama.cpp's convert_hf_to_gguf.py writes it")
    problem = _weights_problem(info)
    if problem:
        raise GGUFError(f"{path}: {problem}; allowed: a GGUF file of trained weights (as llama.cpp's converter "
                        "or quantizer writes them)")
    return info


def to_base_folder(path: str | Path, out: Path, dtype_name: str = "float32") -> dict:
    """Dequantize the GGUF file into a transformers folder (weights, config, tokenizer) at `out`.
    Returns what the build record keeps about the source."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from quantbench.modelio import torch_dtype

    info = check(path)
    path = Path(path)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                 dtype=torch_dtype(dtype_name))
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    # The loaded model keeps the GGUF "quantizer" although its weights are plain tensors now;
    # save_pretrained refuses to write a model that looks quantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    return {"gguf_file": str(path), "gguf_version": info.version, "architecture": info.architecture,
            "gguf_name": info.metadata.get("general.name"), "gguf_file_type": info.metadata.get("general.file_type"),
            "gguf_tensor_types": info.tensor_types, "gguf_size_bytes": info.size_bytes,
            "n_parameters": n_params, "dtype": dtype_name}
