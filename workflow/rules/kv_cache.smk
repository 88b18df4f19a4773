# KV-cache quantization crossed with context length (config kv_cache:, docs/kv-cache.md): each
# <variant>@<cache> row, and each applied variant with its plain cache, against the baseline with the
# plain cache on long held-out windows fed in chunks. Without kv_cache: in the config, no job here runs.


wildcard_constraints:
    kv_variant=alternation(KV_VARIANTS),


rule kv_reference:
    input:
        model=f"{R}/models/{EXP.baseline}",
        script=f"{SCRIPTS}/kv_reference.py",
        lib=library("kv_reference.py", BASELINE.backend),
    output:
        f"{R}/kv/reference.pt",
    log:
        f"{R}/logs/kv/reference.log",
    conda:
        # as the evaluate rule: the eval env loads every torch backend and carries hqq (eval.post-deploy.sh)
        conda_env("eval")
    resources:
        **job_resources("evaluate"),
    params:
        spec=lambda w: job_params(EXP.baseline, kv_cache=KV),
    shell:
        f"{ON_GPU}python {{input.script}} --params {{params.spec:q}} --model {{input.model}}"
        " --out {output} --threads {threads} 2>&1 | tee {log}"


rule kv_evaluate:
    input:
        model=lambda w: f"{R}/models/{kv_config.split(w.kv_variant)[0]}",
        reference=f"{R}/kv/reference.pt",
        script=f"{SCRIPTS}/kv_evaluate.py",
        lib=lambda w: library("kv_evaluate.py", kv_backend(w)),
    output:
        f"{R}/records/kv/{{kv_variant}}.json",
    log:
        f"{R}/logs/kv/{{kv_variant}}.log",
    conda:
        # as the evaluate rule: the env that scores the backend (Backend.EVALUATE_ENV; eval carries hqq)
        lambda w: conda_env(backends.get(kv_backend(w)).EVALUATE_ENV)
    resources:
        **job_resources("evaluate"),
    params:
        spec=lambda w: kv_params(w.kv_variant),
    shell:
        f"{ON_GPU}python {{input.script}} --params {{params.spec:q}} --model {{input.model}}"
        " --reference {input.reference} --record {output} --threads {threads} 2>&1 | tee {log}"


rule kv_report:
    input:
        records=[f"{R}/records/kv/{v}.json" for v in KV_VARIANTS],
        script=f"{SCRIPTS}/kv_report.py",
        lib=library("kv_report.py"),
    output:
        md=f"{R}/report/kv_cache.md",
        figure=f"{R}/report/figures/kv_kl_by_bucket.png",
    log:
        f"{R}/logs/kv/report.log",
    conda:
        conda_env("report")
    params:
        baseline=EXP.baseline,
    shell:
        "python {input.script} --records {input.records} --baseline {params.baseline}"
        " --out {output.md} --figure {output.figure} 2>&1 | tee {log}"
