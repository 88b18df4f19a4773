# What both workflows set up first (included by common.smk for causal LMs and by encoder.smk):
# this checkout's library for Snakemake and its jobs, the jobs' environment, the CUDA check, and
# the config's shape.
import os
import shutil
import sys

from snakemake.logging import logger
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


from quantbench import resources as requests  # noqa: E402

EXECUTOR = requests.executor_named(sys.argv, os.environ)
# Submitting to a cluster: jobs run on nodes of their own, with allocations of their own.
CLUSTER = requests.submits_to_cluster(EXECUTOR)
PLANS_ONLY = CLUSTER or requests.is_dry_run(sys.argv)


def cuda_visible():
    # Decided without importing torch: submit hosts of a cluster may have no GPU of their own.
    return bool(os.environ.get("QUANTBENCH_ASSUME_CUDA")) or shutil.which("nvidia-smi") is not None


def cuda_for_validation():
    """Whether validation may take `device: cuda` as runnable: where a GPU is seen; on a cluster's
    submit host and in a dry run (they plan, they run nothing here); inside a cluster job (the
    Snakefile is read again there, also for jobs that need no GPU: a GPU job's own wrapper,
    quantbench/gpu_slot.py, says when its node shows none). A local run without a GPU is refused."""
    in_job = workflow.remote_exec or (EXECUTOR or "").endswith("-jobstep")
    return cuda_visible() or PLANS_ONLY or in_job


def cuda_capability_for_validation():
    """The compute capability of the GPU local jobs will run on (methods that need a newer one, FP8
    matmuls at 8.9, are refused or skipped before any job), or None where it is not this host's: a
    cluster's submit host, a dry run, a cluster job (the Snakefile read again there must plan the same
    jobs), QUANTBENCH_ASSUME_CUDA. There the job checks its own node and stops in one line."""
    from quantbench import cuda_capability

    in_job = workflow.remote_exec or (EXECUTOR or "").endswith("-jobstep")
    if PLANS_ONLY or in_job or os.environ.get("QUANTBENCH_ASSUME_CUDA"):
        return None
    return cuda_capability.visible()


def warn_planning_without_cuda():
    if config.get("device") == "cuda" and not cuda_visible() and PLANS_ONLY:
        logger.warning(
            "config: device: 'cuda' and this machine shows no CUDA device: "
            + ("each job checks for one on its node" if CLUSTER else "a dry run plans without one")
        )


# A job's threads are what a scheduler reserves for it: locally at most --cores; on a cluster (no
# --cores, or a dry run of a submission) at most a per-job bound, never a workstation's max_threads.
JOB_CPUS = requests.job_cpus(config.get("resources") or {})
try:
    CORES = JOB_CPUS if CLUSTER else workflow.cores
except WorkflowError:  # a cluster executor named in no way we read: each job has its own allocation
    CORES = JOB_CPUS
MAX_THREADS = min(CORES, config.get("max_threads", 8))


def planned_model_size():
    """The model's size that job requests are derived from (read once the config is valid)."""
    size, note = requests.planned_size(config, workflow.basedir, os.getcwd())
    if note:
        logger.warning(f"config: {note}")
    return size


def check_schema():
    """The config's shape: the schema first (one line per problem, dotted keys; raises ConfigError),
    then Snakemake's validate() to fill in the schema's defaults."""
    problems = config_messages.schema_errors(config)
    if problems:
        raise config_messages.ConfigError(problems)
    validate(config, "../schemas/config.schema.yaml")
