# Speed and memory of every variant: load time, prefill and generate grids, peak memory.


# a setup without `benchmark:` (fine-tuning only) asks for no benchmark record
BENCHMARK_EXCLUSIVE = config.get("benchmark", {}).get("exclusive", True)


rule benchmark:
    input:
        unpack(variant_inputs),
        script=f"{SCRIPTS}/benchmark.py",
        lib=lambda w: library("benchmark.py", serving_backend(w.variant)),
    output:
        record=f"{R}/records/benchmark/{{variant}}.json",
    log:
        f"{R}/logs/benchmark/{{variant}}.log",
    # The baseline's cells are every speed ratio's denominator: its benchmark goes first among the
    # benchmarks, so that a run cut short by a time limit keeps the row the others are read against.
    priority: lambda w: variant_priority(w.variant, 1 if w.variant == EXP.baseline else 0)
    conda:
        variant_env
    # exclusive (the default): all cores, so no other job shares the machine with a benchmark.
    threads: CORES if BENCHMARK_EXCLUSIVE else 1
    resources:
        **job_resources("benchmark"),
    params:
        spec=lambda w: job_params(w.variant, benchmark=benchmark_spec()),
        adapter=adapter_arg,
    shell:
        f"{NATIVE_KERNELS}{gpu_prefix(alone=BENCHMARK_EXCLUSIVE)}python {{input.script}} --params {{params.spec:q}} --model {{input.model}} {{params.adapter}}"
        " --record {output.record} --threads {threads} 2>&1 | tee {log}"


# One variant through one serving engine (benchmark.engines; quantbench/engines): the same cells for every
# engine, beside the builtin benchmark's. Only the variants the engine can load are asked for
# (quantbench.report.params.engine_runs); exclusive like the benchmark.
rule benchmark_engine:
    input:
        model=lambda w: variant_inputs(w)["model"],
        script=f"{SCRIPTS}/benchmark_engine.py",
        lib=lambda w: library("benchmark_engine.py", serving_backend(w.variant)),
    output:
        record=f"{R}/records/engine/{{engine}}/{{variant}}.json",
    log:
        f"{R}/logs/engine/{{engine}}/{{variant}}.log",
    wildcard_constraints:
        engine="builtin|vllm|llamacpp",
    conda:
        engine_env
    threads: CORES if BENCHMARK_EXCLUSIVE else 1
    resources:
        **job_resources("benchmark"),
    params:
        spec=lambda w: job_params(w.variant, benchmark=benchmark_spec(w.engine)),
    shell:
        f"{NATIVE_KERNELS}{gpu_prefix(alone=BENCHMARK_EXCLUSIVE)}python {{input.script}} --params {{params.spec:q}} --model {{input.model}}"
        " --engine {wildcards.engine} --record {output.record} --threads {threads} 2>&1 | tee {log}"
