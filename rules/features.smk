# Stage 2: features per split (micro frontend by default), cached as .npz.


rule features:
    input:
        index=f"{RESULTS}/data/index.json",
        dataset=f"{RESULTS}/data/dataset",
    output:
        f"{RESULTS}/features/{{split}}.npz",
    log:
        f"{RESULTS}/logs/features_{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/features_{{split}}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        features=config["features"],
        augment=augment_settings,
        seed=config["seed"],
    script:
        "../scripts/features.py"
