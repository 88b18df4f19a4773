# Merge an adapter into the full-precision base (fp) or into the dequantized base it was trained on.


rule merge:
    input:
        adapter=f"{R}/adapters/{{base}}+lora",
        fp_base=f"{R}/models/{EXP.baseline}",
        quantized_base=f"{R}/models/{{base}}",
        script=f"{SCRIPTS}/merge.py",
        lib=lambda w: library("merge.py", EXP.methods[w.base].backend, BASELINE.backend),
    output:
        model=directory(f"{R}/models/{{base}}+lora+merge-{{kind}}"),
        record=f"{R}/records/merge/{{base}}+lora+merge-{{kind}}.json",
    log:
        f"{R}/logs/merge/{{base}}+lora+merge-{{kind}}.log",
    priority: lambda w: recipe_lane_priority(w.base)
    conda:
        lambda w: backend_env(EXP.methods[w.base].backend)  # 'dequant' loads the base through its backend
    resources:
        **job_resources("merge"),
    params:
        spec=lambda w: job_params(f"{w.base}+lora+merge-{w.kind}", kind=w.kind, baseline=method_entry(EXP.baseline)),
    shell:
        f"{ON_GPU}python {{input.script}} --params {{params.spec:q}} --adapter {{input.adapter}}"
        " --fp-base {input.fp_base} --quantized-base {input.quantized_base}"
        " --out {output.model} --record {output.record} --threads {threads} 2>&1 | tee {log}"
