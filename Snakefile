# quantbench: which quantization scheme, for inference and for adapter fine-tuning, measured.
# Every box is a rule and every arrow a file; see README.md and workflow/rules/*.smk.
import sys

from snakemake.utils import min_version

min_version("9.0")


# A config file that Snakemake could read may still name a key twice (YAML keeps the last one);
# the embedded default is read here, so its syntax is checked here too (run.sh checks --configfile
# files before Snakemake parses them).
sys.path.insert(0, workflow.basedir)
from quantbench import config_file, config_messages  # noqa: E402

try:
    config_file.check(workflow.overwrite_configfiles or ["config/config.yaml"])
    # An overlay given alone (no model: section anywhere): one line saying so.
    overlay = config_file.overlay_problems(config, [str(f) for f in workflow.overwrite_configfiles])
    if overlay:
        raise config_messages.ConfigError(overlay)
except config_messages.ConfigError as err:
    raise WorkflowError(str(err)) from None


# The embedded default, unless --configfile names another setup (Snakemake would otherwise merge
# the two, and the toy's methods would leak into a real model's grid).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


# An encoder (model.kind: encoder) has its own small DAG; every other stage is for causal LMs.
if (config.get("model") or {}).get("kind", "causal-lm") == "encoder":

    include: "workflow/rules/encoder.smk"

    rule all:
        default_target: True
        input:
            f"{R}/report/encoder.md",

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
    include: "workflow/rules/sensitivity.smk"
    include: "workflow/rules/kv_functions.smk"
    include: "workflow/rules/kv_cache.smk"
    include: "workflow/rules/report.smk"

    check_resource_keys()

    rule all:
        default_target: True
        input:
            get_final_output(),
            kv_outputs(),
