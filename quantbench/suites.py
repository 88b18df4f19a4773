"""Named evaluation suites, by lm-evaluation-harness's real task names, with the metric each
reports on the Open LLM Leaderboard (v1: Beeching et al. 2023; v2: Fourrier et al. 2024)."""
from __future__ import annotations

# task, few-shot count, metric key as lm-eval writes it (metric,filter), higher is better; `dataset`:
# the Hugging Face dataset lm-eval reads it from (its task YAML's dataset_path), which an offline run
# finds only in the local cache; `local`: built from the run's own data files instead.
SUITES: dict[str, list[dict]] = {
    "leaderboard-v1": [
        {"task": "arc_challenge", "num_fewshot": 25, "metric": "acc_norm,none", "dataset": "allenai/ai2_arc"},
        {"task": "hellaswag", "num_fewshot": 10, "metric": "acc_norm,none", "dataset": "Rowan/hellaswag"},
        {"task": "mmlu", "num_fewshot": 5, "metric": "acc,none", "dataset": "cais/mmlu"},
        {"task": "truthfulqa_mc2", "num_fewshot": 0, "metric": "acc,none", "dataset": "truthfulqa/truthful_qa"},
        {"task": "winogrande", "num_fewshot": 5, "metric": "acc,none", "dataset": "allenai/winogrande"},
        {"task": "gsm8k", "num_fewshot": 5, "metric": "exact_match,strict-match", "dataset": "openai/gsm8k"},
    ],
    "leaderboard-v2": [
        {"task": "leaderboard_ifeval", "num_fewshot": 0, "metric": "prompt_level_strict_acc,none",
         "dataset": "wis-k/instruction-following-eval"},
        {"task": "leaderboard_bbh", "num_fewshot": 3, "metric": "acc_norm,none", "dataset": "SaylorTwift/bbh"},
        {"task": "leaderboard_math_hard", "num_fewshot": 4, "metric": "exact_match,none",
         "dataset": "DigitalLearningGmbH/MATH-lighteval"},
        {"task": "leaderboard_gpqa", "num_fewshot": 0, "metric": "acc_norm,none", "dataset": "Idavidrein/gpqa"},
        {"task": "leaderboard_musr", "num_fewshot": 0, "metric": "acc_norm,none", "dataset": "TAUR-Lab/MuSR"},
        {"task": "leaderboard_mmlu_pro", "num_fewshot": 5, "metric": "acc,none", "dataset": "TIGER-Lab/MMLU-Pro"},
    ],
    "perplexity": [
        {"task": "wikitext", "num_fewshot": 0, "metric": "word_perplexity,none",
         "dataset": "EleutherAI/wikitext_document_level", "higher_is_better": False},
    ],
    # The toy default's local tasks: the same code path as a real model (few-shot multiple choice
    # and a rolling perplexity task), on files the build_toy_data rule writes.
    "toy": [
        {"task": "toy_capitals", "num_fewshot": 3, "metric": "acc,none", "local": "capitals"},
        {"task": "toy_flags", "num_fewshot": 3, "metric": "acc,none", "local": "flags"},
        {"task": "toy_arithmetic", "num_fewshot": 3, "metric": "acc,none", "local": "arithmetic"},
        {"task": "toy_heldout", "num_fewshot": 0, "metric": "word_perplexity,none", "local": "heldout",
         "higher_is_better": False},
    ],
    # Real English offline (data.source: wordnet): WordNet definitions -> word, and example sentences'
    # prefixes -> their next word; four single-token choices each (quantbench/wordnet.py).
    "wordnet": [
        {"task": "wordnet_define", "num_fewshot": 3, "metric": "acc,none", "local": "define"},
        {"task": "wordnet_cloze", "num_fewshot": 3, "metric": "acc,none", "local": "cloze"},
    ],
}


def suite(name: str) -> list[dict]:
    if name not in SUITES:
        raise ValueError(f"unknown evaluation suite {name!r}; allowed: {', '.join(SUITES)}")
    return SUITES[name]


def fewshot(entry: dict, override: int | None) -> int:
    """The few-shot count a task runs with: the config's override, else the suite's own."""
    return override if override is not None else entry["num_fewshot"]


def task_label(entry: dict) -> str:
    return entry["task"].removeprefix("toy_").removeprefix("wordnet_")


def local_task_yaml(entry: dict, data_dir: str) -> str:
    """lm-eval task YAML for a toy task reading local JSON lines (no network)."""
    name, local = entry["task"], entry["local"]
    if local == "heldout":
        return (f"task: {name}\ndataset_path: json\n"
                f"dataset_kwargs:\n  data_files:\n    test: {data_dir}/heldout.jsonl\n"
                "test_split: test\noutput_type: loglikelihood_rolling\n"
                "doc_to_text: ''\ndoc_to_target: '{{text}}'\n"
                "metric_list:\n  - metric: word_perplexity\n  - metric: byte_perplexity\n"
                "  - metric: bits_per_byte\n")
    return (f"task: {name}\ndataset_path: json\n"
            f"dataset_kwargs:\n  data_files:\n    test: {data_dir}/{local}.jsonl\n"
            f"    train: {data_dir}/{local}_fewshot.jsonl\n"
            "test_split: test\nfewshot_split: train\noutput_type: multiple_choice\n"
            "doc_to_text: '{{context}}'\n"
            "doc_to_choice: '{{choices}}'\ndoc_to_target: gold\n"
            "target_delimiter: ' '\nfewshot_delimiter: '\\n\\n'\n"
            "metric_list:\n  - metric: acc\n  - metric: acc_norm\n")
