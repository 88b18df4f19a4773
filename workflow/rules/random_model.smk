# source: random — a real architecture (config.json) with random weights, for speed and memory
# measurements where the checkpoint cannot be had. The local corpus trains a tokenizer of the
# architecture's vocabulary size and serves as calibration and fine-tuning text.


rule build_corpus:
    input:
        script=f"{SCRIPTS}/build_toy_data.py",
        lib=library("build_toy_data.py"),
    output:
        directory(f"{R}/data"),
    log:
        f"{R}/logs/build_corpus.log",
    conda:
        conda_env("bnb")
    resources:
        **job_resources("build_corpus", uses_model=False),
    params:
        spec=job_params("data"),
    shell:
        "python {input.script} --params {params.spec:q} --out {output} > {log} 2>&1"


rule build_random_model:
    input:
        # relative to the project, so the workflow also runs with --directory elsewhere
        architecture=os.path.relpath(os.path.join(workflow.basedir, config["model"]["architecture"])),
        data=f"{R}/data",
        script=f"{SCRIPTS}/build_random_model.py",
        lib=library("build_random_model.py"),
    output:
        model=directory(f"{R}/models/base"),
        record=f"{R}/records/build/base.json",
    log:
        f"{R}/logs/build_random_model.log",
    conda:
        conda_env("bnb")
    threads: MAX_THREADS
    resources:
        **job_resources("build_random_model"),
    params:
        spec=job_params(
            "base",
            random_weights=True,
            model={k: config["model"].get(k) for k in ("architecture", "num_hidden_layers")},
        ),
    shell:
        f"{ON_GPU}python {{input.script}} --params {{params.spec:q}} --architecture {{input.architecture}}"
        " --corpus {input.data}/corpus.jsonl --out {output.model} --record {output.record}"
        " --threads {threads} 2>&1 | tee {log}"
