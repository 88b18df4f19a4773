# A rule that fails on its first attempt and succeeds on the second: shows, through the real
# SLURM executor and quantbench's profile, that a failed job is reported, its log kept, and
# `retries` resubmits it.
rule all:
    input:
        "flaky.done",


rule flaky:
    output:
        "flaky.done",
    resources:
        attempt_no=lambda wildcards, attempt: attempt,
    shell:
        "echo attempt {resources.attempt_no} on $(hostname) in SLURM job $SLURM_JOB_ID; "
        "if [ {resources.attempt_no} -lt 2 ]; then echo 'failing on purpose' >&2; exit 3; fi; "
        "echo ok > {output}"
