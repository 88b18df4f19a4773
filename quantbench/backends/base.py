"""The backend contract: what every quantization backend provides, as a base class.

A backend is a subclass of Backend registered under the name a config's `backend:` uses
(`@register("gptq")`); quantbench.backends.get(name) returns its one instance. Required members are
abstract (a backend that lacks one cannot be instantiated); optional ones have the defaults below,
so callers never probe a backend for a member. Helpers a backend shares with other code (GPTQ's
quantize_config, bitsandbytes' quantization_config) stay module functions beside its class.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from quantbench.loaded_model import LoadedModel


class Backend(ABC):
    name: str = ""  # set by register()

    # --- required ---------------------------------------------------------------------------
    SPEC: dict = {}  # {param: allowed values (a list) or a type}, validated before any job runs

    @abstractmethod
    def describe(self, params: dict) -> str:
        """One line for reports."""

    @abstractmethod
    def needs_cuda(self, params: dict) -> str | None:
        """Why the method cannot run without CUDA, or None."""

    @abstractmethod
    def bits_per_weight(self, params: dict) -> float:
        """Storage cost of a quantized linear weight."""

    @abstractmethod
    def quantize(self, src: str, dst: Path, params: dict, ctx) -> dict:
        """Write a loadable model folder at dst; returns what the quantize record keeps."""

    @abstractmethod
    def load(self, path: str, params: dict, ctx) -> LoadedModel:
        """Load a model folder: the model and what the stages need to know of it (quantbench.loaded_model)."""

    # --- optional, with their defaults ---------------------------------------------------------
    DEFAULTS: dict = {}  # parameter defaults
    REQUIRED: tuple = ()  # parameters a method must set (no default can stand in for them)
    # {param: one line on what it means}: docs/configuration.md is generated from it
    # (tools/config_reference.py), beside SPEC's allowed values and DEFAULTS.
    DESCRIPTIONS: dict = {}
    LOAD_ONLY: frozenset = frozenset()  # parameters chosen at load time, not stored in the checkpoint
    CALIBRATED = False  # quantize() reads calibration texts (ctx.calibration_texts)
    CPU_ALTERNATIVE = ""  # what to choose instead when needs_cuda() stops a CPU run
    CUDA_ALTERNATIVE = ""  # what to choose instead when needs_cpu() stops a CUDA run
    # its jobs run on the host's cores even in a CUDA setup (llama.cpp's CPU build): the workflow
    # starts them first, beside the GPU jobs, instead of leaving that slow lane for last
    HOST_CPU_LANE = False

    # What the workflow, the checks and the report know of a backend live here and nowhere else:
    # callers read them through the registry (tests/test_backend_registry.py holds the list).
    RUNTIME = "torch"  # what runs its models: "torch" (a torch module) or "llama.cpp" (a GGUF file)
    LABEL = ""  # what legends and tables call it; default: its name
    COLOR = "#7f7f7f"  # its report colour at full bit width (fewer bits are drawn paler)
    MARKER = "d"  # its report marker
    ENV = ""  # envs/<ENV>.yaml, the conda env its jobs run in; default: its name
    EVALUATE_ENV = "eval"  # the env whose lm-eval scores it
    # a recipe's `requantize:` may name its methods: quantize() takes a merged model folder as its source
    REQUANTIZE_TARGET = False
    # its model keeps one torch module per linear layer, which the sensitivity stage can move into the
    # baseline one group at a time
    SENSITIVITY = False
    # its quantized layers are GPTQModel's own modules, which PEFT's target 'all-linear' does not match
    GPTQMODEL_LAYERS = False
    # a quantize job's wall time on a GPU: fixed minutes, minutes per billion parameters (quantbench.resources)
    QUANTIZE_MINUTES = (20, 20)
    # the serving engines beside builtin that load its model folders (quantbench.engines), and how
    ENGINES: dict = {}

    @property
    def label(self) -> str:
        return self.LABEL or self.name

    @property
    def env(self) -> str:
        return self.ENV or self.name

    def nominal_bits(self, params: dict) -> float | None:
        """The bit width a report shades the method by when its parameters have no `bits` (a type or
        scheme names it), or None (then the float dtype's, if any)."""
        return None

    def problems(self, params: dict, model_dims: list[int] | None) -> list[str]:
        """Rules across parameters or against the model's layer widths, each message starting with
        the parameter's name."""
        return []

    def unavailable(self, params: dict) -> str | None:
        """Why this environment cannot run the method (a library not installed), or None."""
        return None

    def needs_cpu(self, params: dict) -> str | None:
        """Why the method cannot run on CUDA (checked when device is cuda), or None."""
        return None

    def gpu_unavailable(self, params: dict) -> str | None:
        """Why the library installed here cannot run the method on a GPU (built without its GPU
        backend), or None. Checked when device is cuda and the jobs run on this host's GPU (validation
        sees its compute capability); a host that plans for GPUs elsewhere notes it, and the job checks
        its own node when it loads the model."""
        return None

    def host_cpu_lane(self, params: dict) -> bool:
        """Whether a method's jobs run on the host's cores even in a CUDA setup: HOST_CPU_LANE, unless
        a parameter of the method moves its work onto the GPU (GGUF's offload: gpu)."""
        return self.HOST_CPU_LANE

    def min_cuda_capability(self, params: dict) -> tuple[int, int] | None:
        """The lowest CUDA compute capability the method's kernels run on (quantbench.cuda_capability),
        or None."""
        return None

    def source_problem(self, source: str) -> str | None:
        """Why the backend cannot quantize a model of this model.source (toy, random, pretrained, gguf), or None."""
        return None

    def untrainable(self, params: dict) -> str | None:
        """Why PEFT cannot train LoRA on these layers, or None."""
        return None

    def jit_extension(self, params: dict, dtype_name: str) -> str | None:
        """The GPTQModel JIT kernel extension loading builds (prebuilt before timing), or None."""
        return None

    def dequantize(self, path: str, ctx):
        """The quantized weights as a plain model (merge into 'dequant'); see can_dequantize."""
        raise NotImplementedError(f"backend {self.name!r} cannot dequantize")

    @property
    def can_dequantize(self) -> bool:
        return type(self).dequantize is not Backend.dequantize

    def quantize_encoder(self, src: str, dst: Path, params: dict, device: str, calibration: list, seq_len: int,
                         text: bool) -> dict:
        """The encoder workflow's quantize (quantbench.encoder: an AutoModel of any modality, a tokenizer
        only for text): write dst, return what the record keeps; the library's own error where it refuses."""
        raise NotImplementedError(f"backend {self.name!r} has no encoder path")

    def load_encoder(self, folder: str, params: dict, device: str, route: str | None = None):
        """(model, kernel name) of a folder quantize_encoder wrote; `route` is the record's, where a
        backend quantizes encoders more than one way."""
        raise NotImplementedError(f"backend {self.name!r} has no encoder path")

    @property
    def encodes(self) -> bool:
        """Whether the encoder workflow can run the backend (it implements quantize_encoder)."""
        return type(self).quantize_encoder is not Backend.quantize_encoder

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        unknown = [k for k in [*cls.DEFAULTS, *cls.LOAD_ONLY, *cls.DESCRIPTIONS, *cls.REQUIRED] if k not in cls.SPEC]
        if unknown:
            raise TypeError(f"{cls.__name__}: DEFAULTS, LOAD_ONLY, DESCRIPTIONS or REQUIRED name parameters not in "
                            f"SPEC: {unknown}")


REGISTRY: dict[str, Backend] = {}


def register(name: str):
    """Class decorator: registers the backend's one instance under `name`."""
    def add(cls: type[Backend]) -> type[Backend]:
        if name in REGISTRY:
            raise ValueError(f"backend {name!r} is registered twice")
        cls.name = name
        REGISTRY[name] = cls()
        return cls
    return add
