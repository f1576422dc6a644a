# Stage 3: train each architecture (float), and estimate its size analytically.


rule train:
    input:
        train=f"{RESULTS}/features/training.npz",
        val=f"{RESULTS}/features/validation.npz",
    output:
        model=f"{RESULTS}/models/{{arch}}/float.h5",
        history=f"{RESULTS}/models/{{arch}}/history.csv",
    log:
        f"{RESULTS}/logs/train_{{arch}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_{{arch}}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        train={k: v for k, v in config["train"].items() if k not in ("architectures", "seeds")},
        seed=train_seed,
    script:
        "../scripts/train.py"


rule size:
    input:
        f"{RESULTS}/models/{{arch}}/float.h5",
    output:
        f"{RESULTS}/models/{{arch}}/size.json",
    log:
        f"{RESULTS}/logs/size_{{arch}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/size_{{arch}}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/size.py"
