# Quality of every variant: lm-eval suite, plus KL / top-1 agreement / perplexity against a reference.


rule reference_logprobs:
    input:
        unpack(variant_inputs),
        data=data_input("heldout"),
        script=f"{SCRIPTS}/reference_logprobs.py",
        lib=lambda w: library("reference_logprobs.py", serving_backend(w.variant)),
    output:
        f"{R}/reference/{{variant}}.pt",
    log:
        f"{R}/logs/reference/{{variant}}.log",
    # every evaluation waits for a reference
    priority: lambda w: reference_priority(w.variant)
    conda:
        variant_env
    resources:
        **job_resources("reference_logprobs"),
    params:
        spec=lambda w: evaluate_params(w.variant),
        adapter=adapter_arg,
        heldout=data_file("heldout") or "none",
    shell:
        f"{ON_GPU}python {{input.script}} --params {{params.spec:q}} --model {{input.model}} {{params.adapter}}"
        " --heldout {params.heldout} --out {output} --threads {threads} 2>&1 | tee {log}"


rule evaluate:
    input:
        unpack(variant_inputs),
        reference=lambda w: f"{R}/reference/{EXP.reference(experiment.parse_variant(w.variant))}.pt",
        data=data_input("heldout"),
        script=f"{SCRIPTS}/evaluate.py",
        lib=lambda w: library("evaluate.py", serving_backend(w.variant)),
    output:
        record=f"{R}/records/evaluate/{{variant}}.json",
        lm_eval=f"{R}/lm_eval/{{variant}}.json",
        per_item=f"{R}/lm_eval/{{variant}}.items.json",
    log:
        f"{R}/logs/evaluate/{{variant}}.log",
    priority: lambda w: variant_priority(w.variant, host_lane_priority(serving_method(w.variant)))
    conda:
        # lm-eval's env, or the backend's own where its runtime scores the model (Backend.EVALUATE_ENV)
        lambda w: conda_env(backends.get(serving_backend(w.variant)).EVALUATE_ENV)
    resources:
        **job_resources("evaluate"),
    params:
        spec=lambda w: evaluate_params(w.variant),
        adapter=adapter_arg,
        data=lambda w, input: f"--data {input.data}" if input.data else "",
    shell:
        f"{ON_GPU}python {{input.script}} --params {{params.spec:q}} --model {{input.model}} {{params.adapter}}"
        " --reference {input.reference} {params.data} --record {output.record}"
        " --lm-eval-out {output.lm_eval} --items-out {output.per_item} --threads {threads} 2>&1 | tee {log}"
