"""A job's log says each library warning once: real bitsandbytes int8 forwards on a float32 model,
in a subprocess set up as every workflow script is (quantbench.cli.setup)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAST_WARNING = "MatMul8bitLt: inputs will be cast from torch.float32 to float16 during quantization"

# argv[1] "job": logging as a workflow script sets it up; "plain": logging.basicConfig alone.
FORWARDS = r"""
import logging, sys, tempfile
import torch
from transformers import BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM
from quantbench import cli

if sys.argv[1] == "job":
    cli.setup(cli.parser("test").parse_args([]))
else:
    logging.basicConfig(level=logging.INFO)
torch.manual_seed(0)
folder = tempfile.mkdtemp()
LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=4, vocab_size=320)).save_pretrained(folder)
model = LlamaForCausalLM.from_pretrained(folder, quantization_config=BitsAndBytesConfig(load_in_8bit=True),
                                         dtype=torch.float32)
tokens = torch.randint(0, 320, (1, 8))
with torch.no_grad():
    model(tokens)
    model(tokens)
logging.getLogger("bitsandbytes.test").error("a real error")
logging.getLogger("bitsandbytes.test").error("a real error")
logging.info("a line of the job's own")
logging.info("a line of the job's own")
"""


def _log(mode: str) -> str:
    proc = subprocess.run([sys.executable, "-c", FORWARDS, mode], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_bnb_cast_warning_is_logged_once_per_job_and_errors_and_own_lines_every_time():
    plain, job = _log("plain"), _log("job")
    # the library does repeat it (once per int8 matmul); otherwise this test would show nothing
    assert plain.count(CAST_WARNING) > 2, plain[-3000:]
    assert job.count(CAST_WARNING) == 1, job[-3000:]
    assert job.count("bitsandbytes.autograd._functions: 'MatMul8bitLt: inputs will be cast from t...' (first "
                     "at ") == 1, job[-3000:]
    assert job.count("a real error") == 2
    assert job.count("a line of the job's own") == 2
