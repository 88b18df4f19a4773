# Tables, figures and the markdown report, all read from the result records.


REPORT = f"{R}/report"
# The tables a setup's stages fill: a speed-only setup (no evaluate:, no fine-tune) gets no empty
# quality.csv or finetune.csv (report.py writes the same set).
STAGES = json.loads(report_params())["stages"]
QUALITY_TABLE = (
    [report(f"{REPORT}/quality.csv", category="Tables", caption="../report/quality.rst")]
    if "evaluate" in STAGES
    else []
)
# every table report.py writes is in the HTML report too: a reader of report.html misses none of them
FINETUNE_TABLE = (
    [report(f"{REPORT}/finetune.csv", category="Tables", caption="../report/finetune.rst")]
    if "finetune" in STAGES
    else []
)
BENCHMARK_TABLE = (
    [report(f"{REPORT}/benchmark.csv", category="Tables", caption="../report/benchmark.rst")]
    if config.get("benchmark")
    else []
)
ENGINE_TABLE = (
    [report(f"{REPORT}/engines.csv", category="Tables", caption="../report/engines.rst")]
    if "engines" in json.loads(report_params())
    else []
)
SENSITIVITY_TABLE = (
    [report(f"{REPORT}/sensitivity.csv", category="Tables", caption="../report/sensitivity.rst")]
    if "sensitivity" in STAGES
    else []
)


rule report:
    input:
        records=report_records(),
        script=f"{SCRIPTS}/report.py",
        # the figures draw each backend as its module says (Backend.COLOR, MARKER, LABEL)
        lib=library("report.py", *backends.BACKENDS),
    output:
        md=report(f"{REPORT}/report.md", category="Report", caption="../report/workflow.rst"),
        summary=report(f"{REPORT}/summary.csv", category="Tables", caption="../report/summary.rst"),
        quantize=report(f"{REPORT}/quantize.csv", category="Tables", caption="../report/quantize.rst"),
        stage_tables=BENCHMARK_TABLE + QUALITY_TABLE + FINETUNE_TABLE + SENSITIVITY_TABLE + ENGINE_TABLE,
        plots=report(
            expand(f"{REPORT}/{{p}}.png", p=report_figures()), category="Figures", caption="../report/figure.rst"
        ),
    log:
        f"{R}/logs/report.log",
    conda:
        conda_env("report")
    resources:
        **job_resources("report", uses_model=False),
    params:
        spec=report_params(),
        out=lambda wildcards, output: os.path.dirname(output.md),
    shell:
        "python {input.script} --params {params.spec:q} --records {input.records} --out {params.out} > {log} 2>&1"
