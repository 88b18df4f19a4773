"""The 7b FP8 speed reading (results/reference/h100/llama2-7b-fp8/README.md) against its records: the
step table, the ratios to Marlin, the roofline shares and the profile's split of the GPU time are
recomputed from the benchmark records and must be what the README prints."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "results" / "reference" / "h100" / "llama2-7b-fp8"
README = " ".join((RUN / "README.md").read_text().split())
MARLIN, W8A8, WO = "gptq-4bit-g128-marlin", "torchao-fp8dyn-row", "torchao-fp8wo"


def record(variant):
    return json.loads((RUN / "records" / "benchmark" / f"{variant}.json").read_text())


def fused(variant):
    return {c["batch_size"]: c for c in record(variant)["cells"]
            if c["scenario"] == "generate" and c["mode"] == "fused"}


def test_the_run_is_partial_as_its_readme_says():
    assert not (RUN / "records" / "benchmark" / "fp16.json").exists()
    assert (RUN / "records" / "quantize" / "fp16.json").exists()  # fp16 was made, its benchmark cut off
    assert "no benchmark record" in README and {record(v)["provenance"]["git_commit"] for v in (MARLIN, W8A8, WO)} \
        == {"9a0be88"}


@pytest.mark.parametrize("batch", [1, 4, 16])
def test_step_table_row_is_the_records(batch):
    m, a, w = (fused(v)[batch] for v in (MARLIN, W8A8, WO))
    row = (f"| {batch} | {m['decode_step_ms']:.2f} | {a['decode_step_ms']:.2f} | {w['decode_step_ms']:.2f} | "
           f"{a['decode_tokens_per_s'] / m['decode_tokens_per_s']:.2f} | "
           f"{w['decode_tokens_per_s'] / m['decode_tokens_per_s']:.2f} |")
    assert row in README, row
    assert max(c["iqr_over_median"] for c in (m, a, w)) < 0.004  # "every spread below 0.4%"


def test_ratios_and_roofline_shares_quoted_in_the_reading():
    m, a, w = (fused(v) for v in (MARLIN, W8A8, WO))
    for batch, quoted in ((1, "1.44x faster at batch 1"), (4, "1.42x at 4"), (16, "1.27x at 16")):
        assert f"{m[batch]['decode_tokens_per_s'] / a[batch]['decode_tokens_per_s']:.2f}" in quoted and quoted in README
    assert f"{w[1]['decode_step_ms'] / m[1]['decode_step_ms']:.1f}x Marlin's step at batch 1" in README
    assert f"and {w[1]['decode_step_ms'] / a[1]['decode_step_ms']:.1f}x W8A8's" in README
    for cells, name in ((m, "Marlin"), (a, "W8A8"), (w, "weight-only")):
        pct = sorted(c["decode_roofline_pct"] for c in cells.values())
        assert f"{name} {pct[0]:.0f}-{pct[-1]:.0f}%" in README, (name, pct)


def test_the_profile_split_of_weight_only_is_the_records():
    profile = record(WO)["profiles"][0]
    kernels = profile["top_kernels"]
    dequant = sum(k["share_pct"] for k in kernels if k["kernel"].startswith("triton_poi_fused__to_copy_mul"))
    gemm = sum(k["share_pct"] for k in kernels if k["kernel"].startswith(("nvjet_sm90_hsh", "void cublasLt::splitK")))
    assert f"take {dequant:.0f}% of the GPU time" in README and f"take {gemm:.0f}% (" in README
    steps = re.search(r"take \d+% of the GPU time \((\d+\.\d) ms a step\)", README)[1]
    kernel_ms_per_step = profile["kernel_ms"] / profile["new_tokens"]
    assert abs(float(steps) - kernel_ms_per_step * dequant / 100) < 0.06
