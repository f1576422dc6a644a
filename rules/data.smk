# Stage 1: the dataset (synthesised, or the real Speech Commands) and its splits, and the held-out voices.


rule dataset:
    input:
        manifest=source_manifest,
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
        synthetic=synthetic_settings(),
        holdout=HOLDOUT_VOICES if config["data"]["source"] == "synthetic" else [],
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
        # The sanity pass checks every clip's format and length against the features' rate and clip length.
        clips={
            "sample_rate": config["features"]["sample_rate"],
            "clip_ms": config["features"]["clip_ms"],
            "long_clips": config["data"].get("long_clips", "start"),
        },
    script:
        "../scripts/prepare.py"


rule holdout_dataset:
    output:
        directory(f"{RESULTS}/data/holdout"),
    log:
        f"{RESULTS}/logs/holdout_dataset.log",
    benchmark:
        f"{RESULTS}/benchmarks/holdout_dataset.tsv"
    threads: 2
    resources:
        mem_mb=1000,
        runtime=20,
    params:
        voices=HOLDOUT_VOICES,
        keywords=config["data"]["wanted_words"],
        unknown_words=holdout_unknown_words(),
        sizes={k: v for k, v in (config["data"].get("holdout") or {}).items() if k != "voices"},
        synthetic={k: v for k, v in SYNTHETIC.items() if k in ("conditions", "jobs")},
        seed=config["seed"],
    script:
        "../scripts/holdout_dataset.py"


rule prepare_holdout:
    input:
        f"{RESULTS}/data/holdout",
    output:
        f"{RESULTS}/data/holdout_index.json",
    log:
        f"{RESULTS}/logs/prepare_holdout.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_holdout.tsv"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    params:
        wanted_words=config["data"]["wanted_words"],
    script:
        "../scripts/prepare_holdout.py"
