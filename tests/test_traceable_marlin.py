"""The Marlin custom ops (GPTQ's and AWQ's) schema and fake implementation: what torch.compile traces
on the GPU. The kernels themselves run only on CUDA (exercised by the H100 and H200 runs, whose records
carry the token check of every compiled cell); here the ops must exist and give compile the right shape."""
from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from quantbench import traceable_marlin


@pytest.mark.parametrize("op, rows, extra", [
    ("gptq_marlin_gemm", 4, (True, True)),   # GPTQ's op also takes is_k_full and use_fp32_reduce
    ("awq_marlin_gemm", 16, ()),
])
def test_fake_implementation_gives_the_gemm_output_shape_and_dtype(op, rows, extra):
    with FakeTensorMode():
        x = torch.empty(rows, 1, 576, dtype=torch.float16)
        qweight = torch.empty(576 // 16, 1536 * 16 // 8, dtype=torch.int32)
        none = torch.empty(0, dtype=torch.int32)
        out = getattr(torch.ops.quantbench, op)(x, qweight, torch.empty(9, 1536, dtype=torch.float16),
                                                none, none, none, none, None, 0, 1536, 576, *extra)
    assert tuple(out.shape) == (rows, 1, 1536) and out.dtype == torch.float16


def test_both_marlin_layer_classes_are_patched():
    from gptqmodel.nn_modules.qlinear.marlin import MarlinLinear
    from gptqmodel.nn_modules.qlinear.marlin_awq import AwqMarlinLinear

    assert set(traceable_marlin._marlin_classes()) == {MarlinLinear, AwqMarlinLinear}


def test_patch_leaves_a_model_without_marlin_layers_alone():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8))
    forward = model[0].forward
    assert traceable_marlin.patch(model, torch.float16) == {"marlin_layers_traceable": 0}
    assert model[0].forward == forward
