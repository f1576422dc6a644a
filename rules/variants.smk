# Stage 4: one TFLite model per variant, then one host evaluation per variant, on the test split and on the
# held-out voices.


rule convert_float:
    input:
        f"{RESULTS}/models/{{arch}}/float.h5",
    output:
        model=f"{RESULTS}/variants/{{arch}}/float/model.tflite",
        info=f"{RESULTS}/variants/{{arch}}/float/info.json",
    log:
        f"{RESULTS}/logs/convert_float_{{arch}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/convert_float_{{arch}}.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    script:
        "../scripts/convert_float.py"


rule convert_ptq_int8:
    input:
        model=f"{RESULTS}/models/{{arch}}/float.h5",
        train=f"{RESULTS}/features/training.npz",
    output:
        model=f"{RESULTS}/variants/{{arch}}/ptq_int8/model.tflite",
        info=f"{RESULTS}/variants/{{arch}}/ptq_int8/info.json",
    log:
        f"{RESULTS}/logs/convert_ptq_int8_{{arch}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/convert_ptq_int8_{{arch}}.tsv"
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        samples=config["train"]["representative_samples"],
    script:
        "../scripts/convert_ptq_int8.py"


rule evaluate:
    input:
        model=f"{RESULTS}/variants/{{arch}}/{{variant}}/model.tflite",
        info=f"{RESULTS}/variants/{{arch}}/{{variant}}/info.json",
        test=f"{RESULTS}/features/testing.npz",
        index=f"{RESULTS}/data/index.json",
        float_predictions=float_predictions,
    output:
        metrics=f"{RESULTS}/variants/{{arch}}/{{variant}}/host.json",
        predictions=f"{RESULTS}/variants/{{arch}}/{{variant}}/predictions.npy",
        outputs=f"{RESULTS}/variants/{{arch}}/{{variant}}/outputs.npy",
    log:
        f"{RESULTS}/logs/evaluate_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=TFLITE_VARIANTS,
    threads: 1
    resources:
        mem_mb=1500,
        runtime=15,
    params:
        latency_runs=config["evaluate"]["latency_runs"],
    script:
        "../scripts/evaluate.py"


rule evaluate_holdout:
    input:
        model=f"{RESULTS}/variants/{{arch}}/{{variant}}/model.tflite",
        features=f"{RESULTS}/features/holdout.npz",
        index=f"{RESULTS}/data/holdout_index.json",
    output:
        f"{RESULTS}/variants/{{arch}}/{{variant}}/holdout.json",
    log:
        f"{RESULTS}/logs/evaluate_holdout_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate_holdout_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=TFLITE_VARIANTS,
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        voices=HOLDOUT_VOICES,
    script:
        "../scripts/evaluate_holdout.py"
