# Which layers hurt: each sensitivity method's quantized layers moved into the baseline one group at
# a time (quantbench/sensitivity.py); mixed-precision methods read these records (quantize.smk).


rule sensitivity:
    input:
        base=lambda w: f"{R}/models/{EXP.baseline}",
        model=f"{R}/models/{{method}}",
        reference=f"{R}/reference/{EXP.baseline}.pt",
        script=f"{SCRIPTS}/sensitivity.py",
        lib=lambda w: library("sensitivity.py", EXP.methods[w.method].backend, BASELINE.backend),
    output:
        record=f"{R}/records/sensitivity/{{method}}.json",
    log:
        f"{R}/logs/sensitivity/{{method}}.log",
    conda:
        method_env
    resources:
        **job_resources("sensitivity"),
    params:
        spec=lambda w: sensitivity_params(w.method),
    shell:
        f"{ON_GPU}python {{input.script}} --params {{params.spec:q}} --base {{input.base}} --model {{input.model}}"
        " --reference {input.reference} --record {output.record} --threads {threads} 2>&1 | tee {log}"
