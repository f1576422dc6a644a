# Stage 2: features per split (micro frontend by default), cached as .npz.


rule features:
    input:
        index=f"{RESULTS}/data/index.json",
        dataset=f"{RESULTS}/data/dataset",
    output:
        f"{RESULTS}/features/{{split}}.npz",
    params:
        features=config["features"],
        # Only the training split is augmented, so only it depends on the augment settings.
        augment=lambda w: config["augment"] if w.split == "training" else {},
        seed=config["seed"],
    log:
        f"{RESULTS}/logs/features_{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/features_{{split}}.tsv",
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    script:
        "../scripts/features.py"
