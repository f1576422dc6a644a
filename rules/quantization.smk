# Quantization study rules (issue 4): one job per variant in config["quantization"]
# (tinymighty/quantization/grid.py). The rules differ in the files a job writes: variants TFLite can express
# write model.tflite + info.json (the shared `evaluate` rule measures them); fake-quant-only variants write
# host.json themselves; QAT jobs also keep their fine-tuning curves. Inputs: quant_inputs in common.smk.


rule quant_ptq_export:
    input:
        unpack(quant_inputs),
    output:
        model=f"{RESULTS}/variants/{{arch}}/{{variant}}/model.tflite",
        info=f"{RESULTS}/variants/{{arch}}/{{variant}}/info.json",
    log:
        f"{RESULTS}/logs/quant_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/quant_ptq_export_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=Q.rule_regex(config, "ptq_export"),
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
    params:
        settings=quant_params,
    script:
        "../scripts/quant_variant.py"


rule quant_qat_export:
    input:
        unpack(quant_inputs),
    output:
        model=f"{RESULTS}/variants/{{arch}}/{{variant}}/model.tflite",
        info=f"{RESULTS}/variants/{{arch}}/{{variant}}/info.json",
        history=f"{RESULTS}/variants/{{arch}}/{{variant}}/history.csv",
    log:
        f"{RESULTS}/logs/quant_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/quant_qat_export_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=Q.rule_regex(config, "qat_export"),
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        settings=quant_params,
    script:
        "../scripts/quant_variant.py"


# n-bit PTQ the converter cannot express, and minifloat: fake-quant only, no fine-tuning.
rule quant_fakequant:
    input:
        unpack(quant_inputs),
    output:
        host=f"{RESULTS}/variants/{{arch}}/{{variant}}/host.json",
        predictions=f"{RESULTS}/variants/{{arch}}/{{variant}}/predictions.npy",
    log:
        f"{RESULTS}/logs/quant_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/quant_fakequant_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=QUANT_FAKEQUANT,
    threads: 1
    resources:
        mem_mb=3000,
        runtime=15,
    params:
        settings=quant_params,
    script:
        "../scripts/quant_variant.py"


rule quant_qat_fakequant:
    input:
        unpack(quant_inputs),
    output:
        host=f"{RESULTS}/variants/{{arch}}/{{variant}}/host.json",
        predictions=f"{RESULTS}/variants/{{arch}}/{{variant}}/predictions.npy",
        history=f"{RESULTS}/variants/{{arch}}/{{variant}}/history.csv",
    log:
        f"{RESULTS}/logs/quant_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/quant_qat_fakequant_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=Q.rule_regex(config, "qat_fakequant"),
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        settings=quant_params,
    script:
        "../scripts/quant_variant.py"
