# Quantize the base model with each method; re-quantize merged models for deployment.


# Methods whose checkpoints would be identical (they differ only in a load-time choice such as
# the GPTQ kernel) share one quantize job; the others link its output.
# A replicate (<method>~r<k>) is a quantize job of its own: its calibration draw makes its checkpoint.
OWNERS = [m for m in EXP.runnable if EXP.checkpoint_of(m) == m] + list(EXP.replicas)
SHARERS = [m for m in EXP.runnable if EXP.checkpoint_of(m) != m]


localrules:
    reuse_checkpoint,


rule quantize:
    input:
        base=base_model_input,
        data=data_input("calibration"),
        sensitivity=lambda w: sensitivity_inputs(w.method),
        size_of=lambda w: size_of_input(w.method),
        script=f"{SCRIPTS}/quantize.py",
        lib=lambda w: library("quantize.py", EXP.method(w.method).backend),
    output:
        model=directory(f"{R}/models/{{method}}"),
        record=f"{R}/records/quantize/{{method}}.json",
    log:
        f"{R}/logs/quantize/{{method}}.log",
    wildcard_constraints:
        method=alternation(OWNERS),
    priority: lambda w: quantize_priority(w.method)
    conda:
        method_env
    resources:
        **job_resources("quantize", backend=lambda w: EXP.method(w.method).backend),
    params:
        spec=lambda w: quantize_spec(w.method, w.method),
        src=base_model(),
        calibration=lambda w: calibration_arg(w.method),
        sensitivity=sensitivity_arg,
    shell:
        f"{ON_GPU}python {{input.script}} --params {{params.spec:q}} --src {{params.src}} {{params.calibration}} {{params.sensitivity}}"
        " --out {output.model} --record {output.record} --threads {threads} 2>&1 | tee {log}"


rule reuse_checkpoint:
    input:
        model=lambda w: f"{R}/models/{EXP.checkpoint_of(w.method)}",
        record=lambda w: f"{R}/records/quantize/{EXP.checkpoint_of(w.method)}.json",
        script=f"{SCRIPTS}/reuse_checkpoint.py",
        lib=library("reuse_checkpoint.py"),
    output:
        model=directory(f"{R}/models/{{method}}"),
        record=f"{R}/records/quantize/{{method}}.json",
    log:
        f"{R}/logs/quantize/{{method}}.log",
    wildcard_constraints:
        method=alternation(SHARERS),
    conda:
        method_env
    resources:
        **job_resources("quantize", uses_model=False),
    params:
        spec=lambda w: quantize_spec(w.method, w.method),
    shell:
        "python {input.script} --params {params.spec:q} --src {input.model} --src-record {input.record}"
        " --out {output.model} --record {output.record} 2>&1 | tee {log}"


rule requantize:
    input:
        merged=f"{R}/models/{{base}}+lora+merge-{{kind}}",
        data=data_input("calibration"),
        script=f"{SCRIPTS}/quantize.py",
        lib=lambda w: library("quantize.py", EXP.methods[w.method].backend),
    output:
        model=directory(f"{R}/models/{{base}}+lora+merge-{{kind}}+{{method}}"),
        record=f"{R}/records/quantize/{{base}}+lora+merge-{{kind}}+{{method}}.json",
    log:
        f"{R}/logs/requantize/{{base}}+lora+merge-{{kind}}+{{method}}.log",
    priority: lambda w: max(host_lane_priority(EXP.methods[w.method]), RECIPE_PRIORITY)
    conda:
        method_env
    resources:
        **job_resources("requantize", backend=lambda w: EXP.methods[w.method].backend),
    params:
        spec=lambda w: quantize_spec(f"{w.base}+lora+merge-{w.kind}+{w.method}", w.method),
        calibration=lambda w: calibration_arg(w.method),
    shell:
        f"{ON_GPU}python {{input.script}} --params {{params.spec:q}} --src {{input.merged}} {{params.calibration}}"
        " --out {output.model} --record {output.record} --threads {threads} 2>&1 | tee {log}"
