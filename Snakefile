# quantbench: which quantization scheme, for inference and for adapter fine-tuning, measured.
# Every box is a rule and every arrow a file; see README.md and workflow/rules/*.smk.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless --configfile names another setup (Snakemake would otherwise merge
# the two, and the toy's methods would leak into a real model's grid).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



report: "workflow/report/workflow.rst"


# An encoder (model.kind: encoder) has its own small DAG; every other stage is for causal LMs.
if (config.get("model") or {}).get("kind", "causal-lm") == "encoder":

    include: "workflow/rules/encoder.smk"

    rule all:
        input:
            f"{R}/report/encoder.md",
        default_target: True

else:

    include: "workflow/rules/common.smk"
    if config["model"]["source"] == "toy":

        include: "workflow/rules/toy.smk"


    if config["model"]["source"] == "random":

        include: "workflow/rules/random_model.smk"


    if config["model"]["source"] == "gguf":

        include: "workflow/rules/gguf_model.smk"


    if config.get("data", {}).get("source") == "wordnet":

        include: "workflow/rules/wordnet_data.smk"


    include: "workflow/rules/quantize.smk"
    include: "workflow/rules/finetune.smk"
    include: "workflow/rules/merge.smk"
    include: "workflow/rules/benchmark.smk"
    include: "workflow/rules/evaluate.smk"
    include: "workflow/rules/report.smk"


    rule all:
        input:
            get_final_output(),
        default_target: True
