# Pruning study rules (issue 5): one job per variant, fanned out from config["pruning"].
# Each writes the variant's int8 model.tflite + info.json; the shared evaluate rule and the firmware rules
# measure it like every other variant.
from tinymighty import pruning as P

PRUNE_SPECS = P.specs(config)


def _prune_variants(family):
    return V.name_regex([v for v in GRID if v.family == family])


def _prune_spec(w):
    return PRUNE_SPECS[w.variant]


PRUNE_INPUT = dict(
    model=f"{RESULTS}/models/{{arch}}/float.h5",
    train=f"{RESULTS}/features/training.npz",
    val=f"{RESULTS}/features/validation.npz",
)
PRUNE_OUTPUT = dict(
    model=f"{RESULTS}/variants/{{arch}}/{{variant}}/model.tflite",
    info=f"{RESULTS}/variants/{{arch}}/{{variant}}/info.json",
)
PRUNE_PARAMS = dict(spec=_prune_spec, seed=config["seed"], samples=config["train"]["representative_samples"],
                    latency_runs=config["evaluate"]["latency_runs"])


rule prune_unstructured:
    input:
        **PRUNE_INPUT,
    output:
        **PRUNE_OUTPUT,
    params:
        **PRUNE_PARAMS,
    wildcard_constraints:
        variant=_prune_variants(P.FAMILY_UNSTRUCTURED),
    log:
        f"{RESULTS}/logs/prune_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prune_{{arch}}_{{variant}}.tsv"
    threads: 1
    resources:
        # Measured on the default config: ~1.0 GB max RSS, <= 2 min on a loaded 2-core machine.
        mem_mb=1500,
        runtime=15,
    script:
        "../scripts/prune_variant.py"


rule prune_structured:
    input:
        **PRUNE_INPUT,
    output:
        **PRUNE_OUTPUT,
    params:
        **PRUNE_PARAMS,
    wildcard_constraints:
        variant=_prune_variants(P.FAMILY_STRUCTURED),
    log:
        f"{RESULTS}/logs/prune_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prune_{{arch}}_{{variant}}.tsv"
    threads: 1
    resources:
        # Measured on the default config: ~1.0 GB max RSS, <= 2 min on a loaded 2-core machine.
        mem_mb=1500,
        runtime=15,
    script:
        "../scripts/prune_variant.py"


rule prune_2by4:
    input:
        **PRUNE_INPUT,
    output:
        **PRUNE_OUTPUT,
    params:
        **PRUNE_PARAMS,
    wildcard_constraints:
        variant=_prune_variants(P.FAMILY_2BY4),
    log:
        f"{RESULTS}/logs/prune_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prune_{{arch}}_{{variant}}.tsv"
    threads: 1
    resources:
        # Measured on the default config: ~1.0 GB max RSS, <= 2 min on a loaded 2-core machine.
        mem_mb=1500,
        runtime=15,
    script:
        "../scripts/prune_variant.py"


rule prune_qat:
    input:
        **PRUNE_INPUT,
    output:
        **PRUNE_OUTPUT,
    params:
        **PRUNE_PARAMS,
    wildcard_constraints:
        variant=_prune_variants(P.FAMILY_PQAT),
    log:
        f"{RESULTS}/logs/prune_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prune_{{arch}}_{{variant}}.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=20,
    script:
        "../scripts/prune_variant.py"
