"""A setup with kv_cache: gets a report that links the KV-cache page (its own job writes it); a setup
without it keeps its report params, and so its report job, unchanged."""
import copy

import yaml

from quantbench import validation
from quantbench.report import markdown
from quantbench.report.params import report_params
from tests.conftest import ROOT

DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())
OVERLAY = yaml.safe_load((ROOT / "config/overlays/smollm2-kvcache.yaml").read_text())
SMOL = yaml.safe_load((ROOT / "config/smollm2.yaml").read_text())


def test_the_report_links_the_kv_cache_page_only_where_the_setup_has_one():
    plain = validation.build(copy.deepcopy(DEFAULT), cuda_available=False, model_dims=[192, 512])
    assert "kv_cache" not in report_params(plain)
    with_kv = validation.build({**copy.deepcopy(SMOL), "kv_cache": OVERLAY["kv_cache"]}, cuda_available=False,
                               model_dims=[576, 1536])
    assert report_params(with_kv)["kv_cache"] is True
    text = "\n".join(markdown.kv_cache_link())
    assert "[kv_cache.md](kv_cache.md)" in text and text.startswith("## KV-cache")
