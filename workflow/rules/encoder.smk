# The encoder workflow (model.kind: encoder): quantize a sentence encoder with every method (or record
# the library's refusal), embed real sentences, compare with the unquantized embeddings; quantize and
# run random-weight encoders of other modalities (encoder.random_encoders) with every method, or record
# where and why the library refused; report.
# Included instead of the causal-LM rules; it validates the config itself.
import json
import os
import re


include: "setup.smk"


from quantbench import backends, package_paths, validation  # noqa: E402
from quantbench.encoder import checks  # noqa: E402

try:
    check_schema()
    # Methods and baseline as for a causal LM; the files an encoder needs are checked by checks.
    EXP = validation.build(config, cuda_available=cuda_for_validation())
    problems = checks.encoder_errors(config, os.getcwd(), workflow.basedir)
    if problems:
        raise config_messages.ConfigError(problems)
except config_messages.ConfigError as err:
    raise WorkflowError(str(err)) from None
warn_planning_without_cuda()
for name, why in EXP.skipped.items():
    logger.warning(f"config: skipping method {name}: {why} (the encoder report lists it)")

R = f"results/{EXP.model_name}"
SCRIPTS = os.path.relpath(f"{workflow.basedir}/workflow/scripts")
ENC = config["encoder"]
# The text encoder's jobs depend on the encoder settings but not on the other modalities' (random_*).
TEXT_ENC = {k: v for k, v in ENC.items() if not k.startswith("random_")}
# Encoders of other modalities, built here with random weights: each method runs on them or is refused.
RANDOM = ENC.get("random_encoders") or {}
# A WordNet data file is turned into {"text": ...} rows of its example sentences by a job.
from quantbench.encoder.wordnet_examples import is_wordnet_data_file  # noqa: E402

SENTENCES = f"{R}/data/sentences.jsonl" if is_wordnet_data_file(ENC["sentences"]) else ENC["sentences"]
SENTENCES_INPUT = [SENTENCES] if SENTENCES != ENC["sentences"] else []
DEVICE = config.get("device", "cpu")
# Threads bounded as for causal LMs (MAX_THREADS: setup.smk); requests derived from the model's size.
MODEL_SIZE = planned_model_size()
REPORT_ENV = os.path.join(workflow.basedir, "envs", "report.yaml")


def encoder_resources(name, stage, uses_model=True):
    return requests.job_request(name, stage, config=config, size=MODEL_SIZE, uses_model=uses_model, environ=os.environ)


def encoder_env(method):
    """The conda env of a job that loads this method's model: its backend's."""
    return os.path.join(workflow.basedir, "envs", f"{backends.get(EXP.methods[method].backend).env}.yaml")


def encoder_params(method):
    """What an encoder job's output depends on: params: changes rerun exactly those jobs."""
    m = EXP.methods[method]
    return json.dumps(
        {
            "method": {"name": m.name, "backend": m.backend, "params": m.params},
            "model_path": config["model"]["path"],
            "device": DEVICE,
            "seed": config.get("seed", 0),
            **TEXT_ENC,
            "sentences": SENTENCES,
            "sentences_from": ENC["sentences"],
        },
        sort_keys=True,
    )


rule encoder_sentences:
    input:
        script=f"{SCRIPTS}/encoder_sentences.py",
    output:
        f"{R}/data/sentences.jsonl",
    log:
        f"{R}/logs/encoder/sentences.log",
    conda:
        REPORT_ENV
    resources:
        **encoder_resources("encoder_sentences", "light", uses_model=False),
    params:
        wordnet=ENC["sentences"],
    shell:
        "python {input.script} --wordnet {params.wordnet:q} --out {output} 2>&1 | tee {log}"


wildcard_constraints:
    method="|".join(re.escape(m) for m in EXP.runnable),


rule encoder_quantize:
    input:
        sentences=SENTENCES_INPUT,
        script=f"{SCRIPTS}/encoder_quantize.py",
    output:
        model=directory(f"{R}/models/{{method}}"),
        record=f"{R}/records/quantize/{{method}}.json",
    log:
        f"{R}/logs/quantize/{{method}}.log",
    conda:
        lambda w: encoder_env(w.method)
    threads: MAX_THREADS
    resources:
        **encoder_resources("encoder_quantize", "quantize"),
    params:
        spec=lambda w: encoder_params(w.method),
    shell:
        "python {input.script} --params {params.spec:q} --out {output.model} --record {output.record}"
        " --threads {threads} 2>&1 | tee {log}"


rule encoder_reference:
    input:
        model=f"{R}/models/{EXP.baseline}",
        record=f"{R}/records/quantize/{EXP.baseline}.json",
        sentences=SENTENCES_INPUT,
        script=f"{SCRIPTS}/encoder_embed.py",
    output:
        f"{R}/reference/encoder_embeddings.pt",
    log:
        f"{R}/logs/encoder/reference.log",
    conda:
        encoder_env(EXP.baseline)
    threads: MAX_THREADS
    resources:
        **encoder_resources("encoder_reference", "evaluate"),
    params:
        spec=encoder_params(EXP.baseline),
    shell:
        "python {input.script} --params {params.spec:q} --model {input.model} --quantize-record {input.record}"
        " --embeddings {output} --threads {threads} 2>&1 | tee {log}"


rule encoder_evaluate:
    input:
        model=f"{R}/models/{{method}}",
        record=f"{R}/records/quantize/{{method}}.json",
        reference=rules.encoder_reference.output,
        sentences=SENTENCES_INPUT,
        script=f"{SCRIPTS}/encoder_embed.py",
    output:
        f"{R}/records/encoder/{{method}}.json",
    log:
        f"{R}/logs/encoder/{{method}}.log",
    conda:
        lambda w: encoder_env(w.method)
    threads: MAX_THREADS
    resources:
        **encoder_resources("encoder_evaluate", "evaluate"),
    params:
        spec=lambda w: encoder_params(w.method),
    shell:
        "python {input.script} --params {params.spec:q} --model {input.model} --quantize-record {input.record}"
        " --reference {input.reference} --record {output} --threads {threads} 2>&1 | tee {log}"


wildcard_constraints:
    encoder="|".join(re.escape(e) for e in RANDOM) or "(?!)",


def random_architecture(encoder):
    """The architecture file of a random encoder, relative to the working directory."""
    return os.path.relpath(os.path.join(workflow.basedir, RANDOM[encoder]))


rule encoder_random_build:
    input:
        architecture=lambda w: random_architecture(w.encoder),
        script=f"{SCRIPTS}/encoder_random_build.py",
    output:
        model=directory(f"{R}/random/{{encoder}}/model"),
        record=f"{R}/random/{{encoder}}/build.json",
    log:
        f"{R}/logs/random/{{encoder}}/build.log",
    conda:
        encoder_env(EXP.baseline)
    resources:
        **encoder_resources("encoder_random_build", "build"),
    params:
        spec=lambda w: json.dumps(
            {"encoder": w.encoder, "architecture": RANDOM[w.encoder], "seed": config.get("seed", 0)}, sort_keys=True
        ),
    shell:
        "python {input.script} --params {params.spec:q} --architecture {input.architecture} --out {output.model}"
        " --record {output.record} 2>&1 | tee {log}"


def probe_params(encoder, method):
    """What a probe's record depends on: params: changes rerun exactly those jobs."""
    m = EXP.methods[method]
    keys = ("random_batch_size", "warmup", "repeats", "max_length")
    return json.dumps(
        {
            "method": {"name": m.name, "backend": m.backend, "params": m.params},
            "encoder": encoder,
            "device": DEVICE,
            "seed": config.get("seed", 0),
            **{k: ENC[k] for k in keys},
        },
        sort_keys=True,
    )


rule encoder_probe:
    input:
        model=f"{R}/random/{{encoder}}/model",
        script=f"{SCRIPTS}/encoder_probe.py",
    output:
        f"{R}/random/{{encoder}}/records/{{method}}.json",
    log:
        f"{R}/logs/random/{{encoder}}/{{method}}.log",
    conda:
        lambda w: encoder_env(w.method)
    threads: MAX_THREADS
    resources:
        **encoder_resources("encoder_probe", "quantize"),
    params:
        spec=lambda w: probe_params(w.encoder, w.method),
    shell:
        "python {input.script} --params {params.spec:q} --model {input.model} --record {output}"
        " --threads {threads} 2>&1 | tee {log}"


def encoder_setup():
    path = package_paths.resolve(config["model"]["path"])
    with open(os.path.join(path, "config.json")) as f:
        model_type = json.load(f).get("model_type")
    return {
        "model": config["model"]["path"],
        "model_type": model_type,
        "sentences_file": ENC["sentences"],
        "max_sentences": ENC["max_sentences"],
        "batch_size": ENC["batch_size"],
        "max_length": ENC["max_length"],
        "device": DEVICE,
        "baseline": EXP.baseline,
        "random_encoders": RANDOM,
        "random_batch_size": ENC["random_batch_size"],
    }


rule encoder_report:
    input:
        records=expand(f"{R}/records/encoder/{{m}}.json", m=EXP.runnable),
        probes=expand(f"{R}/random/{{e}}/records/{{m}}.json", e=RANDOM, m=EXP.runnable),
        script=f"{SCRIPTS}/encoder_report.py",
    output:
        md=report(f"{R}/report/encoder.md", category="Encoder", caption="../report/encoder.rst"),
        csv=f"{R}/report/encoder.csv",
        modalities=f"{R}/report/encoder_modalities.csv",
        claims=f"{R}/report/encoder_claims.csv",
    log:
        f"{R}/logs/report/encoder.log",
    conda:
        REPORT_ENV
    resources:
        **encoder_resources("encoder_report", "light", uses_model=False),
    params:
        spec=json.dumps(
            {
                "title": EXP.model_name,
                "min_cosine": ENC["min_cosine"],
                "setup": encoder_setup(),
                "skipped": EXP.skipped,
            },
            sort_keys=True,
        ),
    shell:
        "python {input.script} --params {params.spec:q} --records {input.records} --probes {input.probes}"
        " --out {R}/report 2>&1 | tee {log}"
