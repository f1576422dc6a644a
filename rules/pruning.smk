# Pruning study rules (issue 5): one job per variant, fanned out from config["pruning"]; the variant's spec
# (tinymighty/pruning/grid.py) says how to prune it. Each writes the variant's int8 model.tflite + info.json;
# the shared evaluate rule and the firmware rules measure it like every other variant.


rule prune:
    input:
        model=f"{RESULTS}/models/{{arch}}/float.h5",
        train=f"{RESULTS}/features/training.npz",
        val=f"{RESULTS}/features/validation.npz",
    output:
        model=f"{RESULTS}/variants/{{arch}}/{{variant}}/model.tflite",
        info=f"{RESULTS}/variants/{{arch}}/{{variant}}/info.json",
    log:
        f"{RESULTS}/logs/prune_{{arch}}_{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prune_{{arch}}_{{variant}}.tsv"
    wildcard_constraints:
        variant=PRUNE_VARIANTS,
    threads: 1
    resources:
        mem_mb=1500,
        runtime=prune_runtime,
    params:
        spec=prune_spec,
        seed=config["seed"],
        samples=config["train"]["representative_samples"],
        latency_runs=config["evaluate"]["latency_runs"],
    script:
        "../scripts/prune_variant.py"
