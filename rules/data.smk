# Stage 1: the dataset (synthesised with espeak-ng, or the real Speech Commands) and its splits.


rule dataset:
    output:
        directory(f"{RESULTS}/data/dataset"),
    log:
        f"{RESULTS}/logs/dataset.log",
    benchmark:
        f"{RESULTS}/benchmarks/dataset.tsv"
    threads: 2
    resources:
        mem_mb=1000,
        runtime=60,
    params:
        source=config["data"]["source"],
        path=config["data"].get("path"),
        url=config["data"].get("url"),
        sha256=config["data"].get("sha256"),
        synthetic=config["data"].get("synthetic", {}),
        splits={k: config["data"].get(k, 10) for k in ("validation_percentage", "testing_percentage")},
        seed=config["seed"],
    script:
        "../scripts/dataset.py"


rule prepare:
    input:
        f"{RESULTS}/data/dataset",
    output:
        f"{RESULTS}/data/index.json",
    log:
        f"{RESULTS}/logs/prepare.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        wanted_words=config["data"]["wanted_words"],
        percentages={
            k: config["data"].get(k, 10)
            for k in ("validation_percentage", "testing_percentage", "silence_percentage", "unknown_percentage")
        },
        seed=config["seed"],
    script:
        "../scripts/prepare.py"
