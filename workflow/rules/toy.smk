# The embedded default: local data and a toy Llama trained on it (no network anywhere).


rule build_toy_data:
    input:
        script=f"{SCRIPTS}/build_toy_data.py",
        lib=library("build_toy_data.py"),
    output:
        directory(f"{R}/data"),
    log:
        f"{R}/logs/build_toy_data.log",
    conda:
        conda_env("report")
    resources:
        **job_resources("build_toy_data", uses_model=False),
    params:
        spec=job_params("data"),
    shell:
        "python {input.script} --params {params.spec:q} --out {output} > {log} 2>&1"


rule build_toy_model:
    input:
        data=f"{R}/data",
        script=f"{SCRIPTS}/build_toy_model.py",
        lib=library("build_toy_model.py"),
    output:
        model=directory(f"{R}/models/base"),
        record=f"{R}/records/build/base.json",
    log:
        f"{R}/logs/build_toy_model.log",
    conda:
        conda_env("bnb")
    threads: MAX_THREADS
    resources:
        **job_resources("build_toy_model", uses_model=False),
    params:
        spec=job_params("base", toy=config["model"].get("toy", {})),
        threads=JOB_THREADS,  # torch's; `threads:` below is what the scheduler reserves
    shell:
        "python {input.script} --params {params.spec:q} --data {input.data} --out {output.model}"
        " --record {output.record} --threads {params.threads} 2>&1 | tee {log}"
