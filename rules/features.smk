# Stage 2: features per split (micro frontend by default), cached as .npz; the held-out voices get theirs
# from the same pipeline, unaugmented.


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
        frontend=FRONTEND_CODE,
        augment=augment_settings,
        seed=config["seed"],
    script:
        "../scripts/features.py"


rule holdout_features:
    input:
        index=f"{RESULTS}/data/holdout_index.json",
        dataset=f"{RESULTS}/data/holdout",
    output:
        f"{RESULTS}/features/holdout.npz",
    log:
        f"{RESULTS}/logs/features_holdout.log",
    benchmark:
        f"{RESULTS}/benchmarks/features_holdout.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        features=config["features"],
        frontend=FRONTEND_CODE,
        seed=config["seed"],
    script:
        "../scripts/holdout_features.py"
