"""Every shipped config dry-runs (GPU setups with CUDA assumed), and the leaderboard setup lists its
evaluate jobs with lm-eval's task names and leaderboard few-shot counts."""
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT, plan

CONFIGS = sorted(p.name for p in (ROOT / "config").glob("*.yaml"))


def dry_run(config: str, tmp_path: Path, *overlays: str) -> str:
    proc = plan(tmp_path, config, *overlays, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("config", CONFIGS)
def test_shipped_config_dry_runs(config, tmp_path):
    out = dry_run(config, tmp_path)
    assert "Job stats:" in out


def test_overlay_adds_its_method_to_the_base_config(tmp_path):
    """config/overlays/ files are named after a base config and only add to it: Snakemake merges
    them, so the base's methods stay and the overlay's are planned beside them."""
    out = dry_run("smollm2.yaml", tmp_path, "overlays/smollm2-int8dyn.yaml")
    planned = set(re.findall(r'"variant": "([^"]+)"', out))
    assert {"torchao-int8dyn", "torchao-int8wo", "gguf-q4_0", "bnb-nf4+lora"} <= planned


def test_leaderboard_config_lists_evaluate_jobs_with_task_names(tmp_path):
    out = dry_run("llama2-7b-quality.yaml", tmp_path)
    commands = [line for line in out.splitlines() if "evaluate.py --params" in line]
    assert len(commands) >= 4
    expected = ["arc_challenge:25-shot", "hellaswag:10-shot", "mmlu:5-shot", "truthfulqa_mc2:0-shot",
                "winogrande:5-shot", "gsm8k:5-shot"]
    for cmd in commands:
        tasks = re.search(r'"tasks": \[([^]]*)\]', cmd)[1]
        assert [t.strip(' "') for t in tasks.split(",")] == expected
    variants = {re.search(r'"variant": "([^"]+)"', c)[1] for c in commands}
    assert {"fp16", "bnb-nf4", "gptq-4bit-g128", "bnb-nf4+lora+merge-dequant+gptq-4bit-g128"} <= variants


# A commented method line, as a config offers it for copying: `#   name: {backend: ..., ...}`
SAMPLE_METHOD = re.compile(r"^#\s+([a-z0-9][a-z0-9_.-]*):\s+(\{backend:.*\})\s*$")


def test_commented_sample_methods_are_valid_where_they_are_offered():
    """A line a user is told to uncomment passes the same checks as the config's own methods,
    against that config's model (its layer widths decide which group sizes fit)."""
    import yaml

    from quantbench import model_facts, validation

    text = (ROOT / "config" / "smollm2.yaml").read_text()
    samples = {m[1]: yaml.safe_load(m[2]) for m in map(SAMPLE_METHOD.match, text.splitlines()) if m}
    assert {"hqq-3bit-g64", "gguf-q6_k"} <= set(samples)
    config = yaml.safe_load(text)
    config["methods"].update(samples)
    dims = model_facts.model_dims(config, str(ROOT), str(ROOT))
    assert dims and set(dims) == {576, 1536}
    exp = validation.build(config, cuda_available=False, model_dims=dims)
    assert set(samples) <= set(exp.runnable)


def _prioritized(out: str) -> tuple[set[str], set[str]]:
    """The outputs (first path of each job, its file name) the plan gives a priority above zero: the
    benchmark records' apart."""
    found, benchmarks = set(), set()
    for block in out.split("\nrule ")[1:] + out.split("\nlocalrule ")[1:]:
        output = re.search(r"^\s+output: ([^,\n]+)", block, re.M)
        if output and re.search(r"^\s+priority: [1-9]", block, re.M):
            (benchmarks if "/records/benchmark/" in output[1] else found).add(output[1].rsplit("/", 1)[-1])
    return found, benchmarks


def test_the_baseline_and_the_recipe_start_first_and_a_cuda_setup_the_llamacpp_lane(tmp_path):
    """Every evaluation waits for the baseline's reference: on either device the baseline's quantize job
    and that reference come first, and so does the recipe's chain (its base's quantize, the fine-tune,
    the merges, the re-quantizations, the recipe's reference and what it made), the DAG's longest. On a
    CUDA setup llama.cpp runs on the host's cores beside the GPU jobs: its jobs (GGUF quantize, evaluate)
    get priority too. Among the benchmarks, the baseline's goes first: a run cut short keeps the row
    every speed ratio is read against."""
    chain = {"bnb-nf4", "bnb-nf4+lora", "bnb-nf4+lora+merge-fp", "bnb-nf4+lora+merge-dequant",
             "bnb-nf4+lora.pt"}
    recipe_made = {f"bnb-nf4+lora+merge-{k}{rq}" for k in ("fp", "dequant") for rq in ("", "+gptq-4bit-g64")}
    first = {"fp32", "fp32.pt"} | chain | {f"{v}+gguf-q4_k_m" for v in ("bnb-nf4+lora+merge-fp",
                                                                          "bnb-nf4+lora+merge-dequant")}
    cpu, cpu_benchmarks = _prioritized(dry_run("smollm2.yaml", tmp_path / "cpu"))
    assert first <= cpu, first - cpu
    assert {f"{v}.json" for v in recipe_made} <= cpu, cpu  # their evaluate records
    assert cpu_benchmarks == {"fp32.json"} | {f"{v}.json" for v in recipe_made} | {
        f"bnb-nf4+lora+merge-{k}+gguf-q4_k_m.json" for k in ("fp", "dequant")}, cpu_benchmarks
    assert not any(p.startswith(("gptq-", "awq-", "hqq-", "torchao-", "bnb-int8", "gguf-")) for p in cpu), cpu
    cuda, benchmarks = _prioritized(dry_run("smollm2-cuda.yaml", tmp_path / "cuda"))
    assert benchmarks == cpu_benchmarks, benchmarks
    assert first | {"gguf-q4_0", "gguf-q4_k_m", "gguf-f32.json"} <= cuda, cuda
    # nothing else that runs on the GPU
    assert all("gguf" in p or p.endswith(".pt") or p.split(".")[0] in first | recipe_made for p in cuda), cuda


def test_overlay_can_move_a_setups_gguf_methods_to_the_gpu(tmp_path):
    """An overlay that names a setup's method again changes its parameters: with
    overlays/smollm2-cuda-gguf-on-gpu.yaml the GGUF evaluations of smollm2-cuda.yaml leave the host CPU
    lane (whose jobs start first) and keep their GPU slot, under the same names, nothing added or lost."""
    base = dry_run("smollm2-cuda.yaml", tmp_path / "base")
    moved = dry_run("smollm2-cuda.yaml", tmp_path / "moved", "overlays/smollm2-cuda-gguf-on-gpu.yaml")
    variants = re.compile(r'"variant": "([^"]+)"')
    assert set(variants.findall(moved)) == set(variants.findall(base))

    def gguf_evaluate(out):
        return next(b for b in out.split("\nrule ")
                    if b.startswith("evaluate:") and "/records/evaluate/gguf-q8_0.json" in b)

    assert "priority: 10" in gguf_evaluate(base) and "priority:" not in gguf_evaluate(moved)
    assert "gpu=1" in gguf_evaluate(moved) and "gpu_slot" in gguf_evaluate(moved)
