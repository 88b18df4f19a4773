"""The EXL3 backend (quantbench/backends/exl3.py) where a CPU can check it: its parameters, its refusal
on the CPU, the bits it measures in a folder, its padding glue, and a GPU setup that plans its jobs.
exllamav3's converter and kernels need CUDA: nothing here imports exllamav3, and nothing here says the
backend runs (docs/adding-a-backend.md, "EXL3")."""
from __future__ import annotations

import copy
import re
import sys
import types

import pytest
import torch
import yaml

from quantbench import config_messages, validation
from quantbench.backends import get
from quantbench.modelio import RunContext
from tests.conftest import ROOT, plan

DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def _config(device: str = "cuda", **methods) -> dict:
    config = copy.deepcopy(DEFAULT)
    config["device"] = device
    config["methods"].update(methods)
    return config


def _errors(config: dict, tmp_path, cuda: bool = True) -> list[str]:
    with pytest.raises(config_messages.ConfigError) as info:
        validation.load(config, cuda_available=cuda, workdir=str(tmp_path), basedir=str(ROOT))
    return info.value.errors


@pytest.mark.parametrize("bits", [9, 1.5, 8.5, 0])
def test_bits_out_of_range_is_one_line_naming_the_key_value_and_range(bits, tmp_path):
    errors = _errors(_config(**{"exl3-x": {"backend": "exl3", "bits": bits}}), tmp_path)
    assert errors == [f"methods.exl3-x.bits: {float(bits)} is outside EXL3's range; allowed: 2.0 to 8.0 bits per "
                      "weight"]


def test_bits_take_integers_and_fractions_and_head_bits_the_converters_rates(tmp_path):
    methods = {"exl3-2": {"backend": "exl3", "bits": 2}, "exl3-2.5": {"backend": "exl3", "bits": 2.5},
               "exl3-8": {"backend": "exl3", "bits": 8, "head_bits": 16}}
    exp = validation.load(_config(**methods), cuda_available=True, workdir=str(tmp_path), basedir=str(ROOT))
    assert exp.methods["exl3-2"].params == {"bits": 2.0, "head_bits": 6}  # an integer is a number
    assert exp.methods["exl3-2.5"].params == {"bits": 2.5, "head_bits": 6}
    assert exp.methods["exl3-8"].params == {"bits": 8.0, "head_bits": 16}
    assert get("exl3").bits_per_weight(exp.methods["exl3-2.5"].params) == 2.5
    assert get("exl3").describe(exp.methods["exl3-2.5"].params) == "EXL3 2.5 bpw (head 6), exllamav3 trellis"


@pytest.mark.parametrize("params, expected", [
    ({"bits": 4, "head_bits": 9}, "methods.e.head_bits: 9 is not supported by backend 'exl3'; allowed: 2, 2.5, 3, "
                                  "3.5, 4, 5, 6, 7, 8, 16"),
    ({"bits": 4, "head_bits": 4.5}, "methods.e.head_bits: 4.5 is not supported by backend 'exl3'; allowed: 2, 2.5, "
                                    "3, 3.5, 4, 5, 6, 7, 8, 16"),
    ({}, "methods.e.bits: missing; allowed: a number"),
    ({"bits": "4"}, "methods.e.bits: '4' is a string; it must be a number, not a string (write it without quotes); "
                    "allowed: a number"),
    ({"bits": True}, "methods.e.bits: True must be of type float"),
])
def test_bad_parameters_give_one_clear_message(params, expected, tmp_path):
    assert _errors(_config(e={"backend": "exl3", **params}), tmp_path) == [expected]


def test_cpu_run_refuses_exl3_naming_an_alternative(tmp_path):
    config = _config("cpu", **{"exl3-4": {"backend": "exl3", "bits": 4}})
    exp = validation.load(config, cuda_available=False, workdir=str(tmp_path), basedir=str(ROOT))
    assert exp.skipped == {"exl3-4": "EXL3 runs on CUDA only (exllamav3's converter and kernels are a CUDA extension "
                                     "with no CPU path)"}
    assert "exl3-4" not in {v.name for v in exp.variants}
    errors = _errors({**config, "unsupported_methods": "error"}, tmp_path, cuda=False)
    assert errors == ["methods.exl3-4: EXL3 runs on CUDA only (exllamav3's converter and kernels are a CUDA "
                      "extension with no CPU path), and device is 'cpu'; allowed with device cpu: backend gguf "
                      "(llama.cpp's 2- to 8-bit K-quants) or hqq (or set unsupported_methods: skip to record it as "
                      "skipped)"]


def test_quantize_and_load_refuse_the_cpu_before_importing_exllamav3(tmp_path):
    backend = get("exl3")
    ctx = RunContext(device="cpu")
    for call in (lambda: backend.quantize(str(tmp_path), tmp_path / "out", {"bits": 4.0, "head_bits": 6}, ctx),
                 lambda: backend.load(str(tmp_path), {"bits": 4.0, "head_bits": 6}, ctx)):
        with pytest.raises(RuntimeError, match=r"needs CUDA .* choose backend gguf .* or hqq for the CPU"):
            call()
    assert "exllamav3" not in sys.modules


def test_exl3_cannot_be_a_finetune_base(tmp_path):
    config = _config(**{"exl3-4": {"backend": "exl3", "bits": 4}})
    config["finetune"]["bases"] = ["exl3-4"]
    config["recipes"] = []
    errors = _errors(config, tmp_path)
    assert len(errors) == 1 and errors[0].startswith("finetune.bases[0]: 'exl3-4' cannot be fine-tuned: PEFT has no "
                                                     "LoRA layer for exllamav3's Exl3HfLinear"), errors


def test_bits_measured_from_the_folders_tensors(tmp_path):
    """exl3_bits_per_weight reads the safetensors headers: a 4-bit trellis (16 x 16 tiles of 16 * 4
    int16 each) plus one float16 sign per input and per output feature; a layer padded from 576 to 640
    counts the padded tiles."""
    from safetensors.torch import save_file

    from quantbench.backends.exl3 import exl3_bits_per_weight

    def layer(name, rows, cols, k):
        return {f"{name}.trellis": torch.zeros(rows // 16, cols // 16, 16 * k, dtype=torch.int16),
                f"{name}.suh": torch.zeros(rows, dtype=torch.float16),
                f"{name}.svh": torch.zeros(cols, dtype=torch.float16),
                f"{name}.mul1": torch.zeros(1, dtype=torch.int32)}

    save_file({**layer("a", 256, 512, 4), **layer("b", 640, 640, 3)}, str(tmp_path / "model.safetensors"))
    bits = exl3_bits_per_weight(tmp_path, {"a": 256 * 512})
    assert bits == pytest.approx(4 + 16 * (256 + 512) / (256 * 512) + 32 / (256 * 512))
    padded = exl3_bits_per_weight(tmp_path, {"b": 576 * 576})  # stored at 640 x 640
    assert padded == pytest.approx((640 * 640 * 3 + 16 * 1280 + 32) / (576 * 576))
    with pytest.raises(KeyError, match="no EXL3 trellis"):
        exl3_bits_per_weight(tmp_path, {"c": 1})


def test_padding_glue_against_a_stand_in_kernel(monkeypatch):
    """_pad_to_trellis's arithmetic only, with stand-ins for exllamav3's classes (the real ones need its
    CUDA extension): a layer stored at 128 x 128 for a 96 -> 80 transformers layer, whose padded weight
    rows are zero as the converter writes them, gives the unpadded product; an unpadded layer is left
    as it is."""
    from quantbench.backends import exl3

    class StandInHfLinear(torch.nn.Module):  # exllamav3.integration.transformers.Exl3HfLinear's fields
        def __init__(self, key, in_features, out_features, weight):
            super().__init__()
            self.key, self.in_features, self.out_features = key, in_features, out_features
            rows, cols = weight.shape
            self.trellis = torch.zeros(rows // 16, cols // 16, 64, dtype=torch.int16)
            self.suh, self.svh = torch.ones(rows, dtype=torch.half), torch.ones(cols, dtype=torch.half)
            self.su = self.sv = self.mcg = self.mul1 = self.bias = None
            self.padded_weight = weight
            self.inner = None

    class StandInLinearEXL3:  # exllamav3.modules.quant.exl3.LinearEXL3: y = x W at the trellis's width
        def __init__(self, config, in_features, out_features, trellis, key, **kw):
            assert trellis.shape[0] * 16 == in_features and trellis.shape[1] * 16 == out_features
            self.in_features, self.out_features, self.key = in_features, out_features, key

        def forward(self, x, params):
            assert x.dtype == torch.half and x.shape[-1] == self.in_features and x.is_contiguous()
            return (x.float() @ LAYERS[self.key].padded_weight.float()).half()

    weight = torch.zeros(128, 128)
    weight[:96, :80] = torch.randn(96, 80) / 10  # the converter's zero padding (modules/linear.py: pad_out)
    LAYERS = {"padded": StandInHfLinear("padded", 96, 80, weight),
              "aligned": StandInHfLinear("aligned", 128, 128, torch.randn(128, 128))}
    model = torch.nn.ModuleDict(LAYERS)
    integration = types.ModuleType("exllamav3.integration.transformers")
    integration.Exl3HfLinear = StandInHfLinear
    quant = types.ModuleType("exllamav3.modules.quant.exl3")
    quant.LinearEXL3 = StandInLinearEXL3
    for name in ("exllamav3", "exllamav3.integration", "exllamav3.modules", "exllamav3.modules.quant"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "exllamav3.integration.transformers", integration)
    monkeypatch.setitem(sys.modules, "exllamav3.modules.quant.exl3", quant)

    assert exl3._pad_to_trellis(model) == 1
    assert LAYERS["aligned"].inner is None  # the integration's own layer stays
    x = torch.randn(2, 3, 96)
    y = LAYERS["padded"](x)
    assert y.shape == (2, 3, 80) and y.dtype == torch.float32 and y.is_contiguous()
    torch.testing.assert_close(y, x.half().float() @ weight[:96, :80], atol=5e-3, rtol=5e-3)


def test_gpu_setup_plans_exl3_quantize_benchmark_and_evaluate_without_calibration_texts(tmp_path):
    """config/overlays/smollm2-cuda-exl3.yaml on the SmolLM2 GPU setup, dry run with CUDA assumed."""
    proc = plan(tmp_path, "smollm2-cuda.yaml", "overlays/smollm2-cuda-exl3.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for method in ("exl3-3bpw", "exl3-4bpw", "exl3-6bpw"):
        assert re.search(rf"output: \S+/models/{method}, \S+/records/quantize/{method}\.json", out), method
        assert f"records/benchmark/{method}.json" in out and f"records/evaluate/{method}.json" in out, method
    quantize = [line for line in out.splitlines() if "quantize.py --params" in line and '"backend": "exl3"' in line]
    assert len(quantize) == 3
    assert all("--calibration" not in line for line in quantize)  # exllamav3 calibrates on its own data
    assert '"params": {"bits": 4.0, "head_bits": 6}' in "\n".join(quantize)
