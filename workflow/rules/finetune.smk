# LoRA fine-tuning with PEFT on each configured base (QLoRA on bitsandbytes, LoRA on GPTQ, HQQ, torchao int8).


rule finetune:
    input:
        model=f"{R}/models/{{base}}",
        data=data_input("finetune"),
        script=f"{SCRIPTS}/finetune.py",
        lib=lambda w: library("finetune.py", EXP.methods[w.base].backend),
    output:
        adapter=directory(f"{R}/adapters/{{base}}+lora"),
        record=f"{R}/records/finetune/{{base}}.json",
    log:
        f"{R}/logs/finetune/{{base}}.log",
    priority: lambda w: recipe_lane_priority(w.base)
    conda:
        lambda w: backend_env(EXP.methods[w.base].backend)
    threads: MAX_THREADS
    resources:
        **job_resources("finetune"),
    params:
        spec=lambda w: job_params(f"{w.base}+lora", finetune=config["finetune"], dataset=dataset_spec("finetune")),
        data=data_file("finetune") or "none",
        threads=JOB_THREADS,  # torch's; `threads:` below is what the scheduler reserves
    shell:
        f"{ON_GPU}python {{input.script}} --params {{params.spec:q}} --model {{input.model}} --data {{params.data}}"
        " --out {output.adapter} --record {output.record} --threads {params.threads} 2>&1 | tee {log}"
