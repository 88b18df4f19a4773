"""Which layers the CUDA-graph decoders refuse to capture. The capture itself needs CUDA (the GPU
runs record it per cell); here: the refused classes are GPTQModel's real ones, under the names this
GPTQModel gives them, and a model holding one is found, one without is not."""
from __future__ import annotations

import importlib

import pytest
import torch

from quantbench import graph_capture

MODULES = {"ExllamaV2Linear": "gptqmodel.nn_modules.qlinear.exllamav2",
           "AwqExllamaV2Linear": "gptqmodel.nn_modules.qlinear.exllamav2_awq"}


@pytest.mark.parametrize("name", sorted(graph_capture.UNCAPTURABLE))
def test_each_refused_class_exists_in_gptqmodel(name):
    assert hasattr(importlib.import_module(MODULES[name]), name), f"GPTQModel has no {name}: renamed?"


def _bare(cls):
    # the class's constructor needs CUDA; the check reads the type only
    layer = cls.__new__(cls)
    torch.nn.Module.__init__(layer)
    return layer


def test_a_model_with_an_exllama_layer_is_refused_with_the_reason():
    from gptqmodel.nn_modules.qlinear.exllamav2 import ExllamaV2Linear

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Sequential(_bare(ExllamaV2Linear)))
    why = graph_capture.blocker(model)
    assert why and "legacy default stream" in why and "q_gemm.cu" in why


def test_a_model_of_capturable_layers_is_not_refused():
    from gptqmodel.nn_modules.qlinear.marlin import MarlinLinear

    assert graph_capture.blocker(torch.nn.Sequential(torch.nn.Linear(4, 4), _bare(MarlinLinear))) is None
