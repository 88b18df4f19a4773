# What both workflows set up first (included by common.smk for causal LMs and by encoder.smk):
# this checkout's library for Snakemake and its jobs, the jobs' environment, the CUDA check, and
# the config's shape.
import os
import shutil
import sys

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)
# Jobs (local or on a cluster node) import the quantbench library from this checkout.
os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])))
# `python` in shell commands is the interpreter running Snakemake, unless a conda env overrides it.
os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
from quantbench import config_messages, gptqmodel_run  # noqa: E402

gptqmodel_run.environment()  # inherited by every job, whatever imports GPTQModel first
if config.get("offline", True):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def cuda_visible():
    # Decided without importing torch: submit hosts of a cluster may have no GPU of their own.
    return bool(os.environ.get("QUANTBENCH_ASSUME_CUDA")) or shutil.which("nvidia-smi") is not None


def check_schema():
    """The config's shape: the schema first (one line per problem, dotted keys; raises ConfigError),
    then Snakemake's validate() to fill in the schema's defaults."""
    problems = config_messages.schema_errors(config)
    if problems:
        raise config_messages.ConfigError(problems)
    validate(config, "../schemas/config.schema.yaml")
