import copy

import pytest
import yaml

from quantbench import experiment, validation
from tests.conftest import ROOT


@pytest.fixture
def config():
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def test_default_config_derives_all_three_pipelines(config):
    exp = validation.build(config, cuda_available=False, model_dims=[192, 512])
    names = [v.name for v in exp.variants]
    assert "bnb-nf4+lora" in names  # fine-tune on bnb, serve bnb
    assert "gptq-4bit-g32+lora" in names  # fine-tune on GPTQ, serve GPTQ
    assert "bnb-nf4+lora+merge-fp+gptq-4bit-g32" in names  # fine-tune on bnb, merge, serve GPTQ
    assert "bnb-nf4+lora+merge-dequant+gptq-4bit-g32" in names
    assert set(config["methods"]) <= set(names)
    assert len(names) == len(set(names))


def test_variant_names_round_trip(config):
    exp = validation.build(config, cuda_available=False, model_dims=[192, 512])
    for v in exp.variants:
        assert experiment.parse_variant(v.name) == v


def test_references(config):
    exp = validation.build(config, cuda_available=False, model_dims=[192, 512])
    assert exp.reference(experiment.parse_variant("gptq-2bit-g32")) == "fp32"
    assert exp.reference(experiment.parse_variant("bnb-nf4+lora+merge-dequant+gptq-4bit-g32")) == "bnb-nf4+lora"


def test_serving_method(config):
    exp = validation.build(config, cuda_available=False, model_dims=[192, 512])
    assert exp.serving_method(experiment.parse_variant("bnb-nf4+lora+merge-fp")).name == "fp32"
    assert exp.serving_method(experiment.parse_variant("bnb-nf4+lora+merge-fp+gptq-4bit-g32")).name == "gptq-4bit-g32"


def test_cuda_only_method_is_skipped_with_reason(config):
    config = copy.deepcopy(config)
    config["methods"]["gptq-4bit-marlin"] = {"backend": "gptq", "bits": 4, "group_size": 32, "kernel": "marlin"}
    exp = validation.build(config, cuda_available=False, model_dims=[192, 512])
    assert "gptq-4bit-marlin" in exp.skipped
    assert "CUDA" in exp.skipped["gptq-4bit-marlin"]
    assert "gptq-4bit-marlin" not in [v.name for v in exp.variants]


def test_bits_per_weight():
    assert experiment.Method("m", "gptq", {"bits": 4, "group_size": 128}).bits_per_weight == pytest.approx(4 + 20 / 128)
    nf4 = {"bits": 4, "quant_type": "nf4", "double_quant": False}
    assert experiment.Method("m", "bnb", nf4).bits_per_weight == pytest.approx(4.5)
    assert experiment.Method("m", "bnb", {**nf4, "double_quant": True}).bits_per_weight < 4.2
