# The KV-cache axis's settings and the functions its rules read (workflow/rules/kv_cache.smk): kept
# apart from the rules, as Snakemake's lint asks.
from quantbench import kv_config  # noqa: E402

try:
    kv_config.check(config, EXP.methods, workflow.basedir, os.getcwd())
except config_messages.ConfigError as err:
    raise WorkflowError(str(err)) from None
KV = kv_config.settings(config)
KV_CACHES = kv_config.caches(config)
KV_VARIANTS = kv_config.variants(config, EXP.runnable) if KV else []


def kv_outputs():
    """The KV-cache section and its records (nothing without kv_cache:)."""
    if not KV_VARIANTS:
        return []
    return [f"{R}/records/kv/{v}.json" for v in KV_VARIANTS] + [f"{R}/report/kv_cache.md"]


def kv_params(kv_variant):
    variant, cache = kv_config.split(kv_variant)
    spec = KV_CACHES[cache] if cache else None
    entry = {"name": spec.name, "backend": spec.backend, "params": spec.params} if spec else None
    return job_params(variant, kv_variant=kv_variant, kv_cache=KV, cache=entry)


def kv_backend(wildcards):
    return serving_backend(kv_config.split(wildcards.kv_variant)[0])
