# Quantization study rules (issue 4): one job per variant in config["quantization"] (tinymighty/quantization.py).
# Variants TFLite can express write model.tflite + info.json (the shared `evaluate` rule measures them);
# fake-quant-only variants write host.json themselves. QAT jobs also keep their fine-tuning curves.
from tinymighty import quantization as Q

_QUANT_FLOAT = {
    "model": f"{RESULTS}/models/{{arch}}/float.h5",
    "test": f"{RESULTS}/features/testing.npz",
    "float_predictions": f"{RESULTS}/variants/{{arch}}/float/predictions.npy",
}
_QUANT_TRAIN = {"train": f"{RESULTS}/features/training.npz"}
_QUANT_VAL = {"val": f"{RESULTS}/features/validation.npz"}


def _quant_params(w):
    return Q.job_params(config, w.variant)


rule quant_ptq_export:
    input:
        **_QUANT_FLOAT,
        **_QUANT_TRAIN,
    output:
        model=f"{RESULTS}/variants/{{arch}}/{{variant}}/model.tflite",
        info=f"{RESULTS}/variants/{{arch}}/{{variant}}/info.json",
    params:
        settings=_quant_params,
    wildcard_constraints:
        variant=Q.rule_regex(config, "ptq_export"),
    log:
        f"{RESULTS}/logs/quant_{{arch}}_{{variant}}.log",
    threads: 1
    benchmark:
        f"{RESULTS}/benchmarks/quant_ptq_export_{{arch}}_{{variant}}.tsv",
    resources:
        mem_mb=3000,
        runtime=15,
    script:
        "../scripts/quant_variant.py"


rule quant_qat_export:
    input:
        **_QUANT_FLOAT,
        **_QUANT_TRAIN,
        **_QUANT_VAL,
    output:
        model=f"{RESULTS}/variants/{{arch}}/{{variant}}/model.tflite",
        info=f"{RESULTS}/variants/{{arch}}/{{variant}}/info.json",
        history=f"{RESULTS}/variants/{{arch}}/{{variant}}/history.csv",
    params:
        settings=_quant_params,
    wildcard_constraints:
        variant=Q.rule_regex(config, "qat_export"),
    log:
        f"{RESULTS}/logs/quant_{{arch}}_{{variant}}.log",
    threads: 1
    benchmark:
        f"{RESULTS}/benchmarks/quant_qat_export_{{arch}}_{{variant}}.tsv",
    resources:
        mem_mb=3000,
        runtime=60,
    script:
        "../scripts/quant_variant.py"


rule quant_ptq_fakequant:
    input:
        **_QUANT_FLOAT,
        **_QUANT_TRAIN,
    output:
        host=f"{RESULTS}/variants/{{arch}}/{{variant}}/host.json",
        predictions=f"{RESULTS}/variants/{{arch}}/{{variant}}/predictions.npy",
    params:
        settings=_quant_params,
    wildcard_constraints:
        variant=Q.rule_regex(config, "ptq_fakequant"),
    log:
        f"{RESULTS}/logs/quant_{{arch}}_{{variant}}.log",
    threads: 1
    benchmark:
        f"{RESULTS}/benchmarks/quant_ptq_fakequant_{{arch}}_{{variant}}.tsv",
    resources:
        mem_mb=3000,
        runtime=15,
    script:
        "../scripts/quant_variant.py"


rule quant_qat_fakequant:
    input:
        **_QUANT_FLOAT,
        **_QUANT_TRAIN,
        **_QUANT_VAL,
    output:
        host=f"{RESULTS}/variants/{{arch}}/{{variant}}/host.json",
        predictions=f"{RESULTS}/variants/{{arch}}/{{variant}}/predictions.npy",
        history=f"{RESULTS}/variants/{{arch}}/{{variant}}/history.csv",
    params:
        settings=_quant_params,
    wildcard_constraints:
        variant=Q.rule_regex(config, "qat_fakequant"),
    log:
        f"{RESULTS}/logs/quant_{{arch}}_{{variant}}.log",
    threads: 1
    benchmark:
        f"{RESULTS}/benchmarks/quant_qat_fakequant_{{arch}}_{{variant}}.tsv",
    resources:
        mem_mb=3000,
        runtime=60,
    script:
        "../scripts/quant_variant.py"


rule quant_minifloat:
    input:
        **_QUANT_FLOAT,
    output:
        host=f"{RESULTS}/variants/{{arch}}/{{variant}}/host.json",
        predictions=f"{RESULTS}/variants/{{arch}}/{{variant}}/predictions.npy",
    params:
        settings=_quant_params,
    wildcard_constraints:
        variant=Q.rule_regex(config, "minifloat"),
    log:
        f"{RESULTS}/logs/quant_{{arch}}_{{variant}}.log",
    threads: 1
    benchmark:
        f"{RESULTS}/benchmarks/quant_minifloat_{{arch}}_{{variant}}.tsv",
    resources:
        mem_mb=3000,
        runtime=15,
    script:
        "../scripts/quant_variant.py"
