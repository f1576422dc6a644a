# Shared helpers for all rule files: the variant grid and path conventions.
#
# Resources: every rule declares mem_mb and runtime (minutes), sized from the peak RSS and wall time in
# results/benchmarks/*.tsv of the default and tiny runs with about 2x headroom; TensorFlow jobs peak near
# 1 GB, feature extraction near 2 GB. Rules are single-threaded (TF runs with 1 intra/inter-op thread for
# determinism), so threads stay at 1, except dataset synthesis, which runs espeak-ng processes in parallel.
from tinymighty import variants as V

SPLITS = ["training", "validation", "testing"]
RESULTS = "results"
GRID = V.grid(config)
TFLITE_VARIANTS = V.name_regex([v for v in GRID if v.tflite])
INT8_VARIANTS = V.name_regex([v for v in GRID if v.int8])


wildcard_constraints:
    split="training|validation|testing",
    arch="[a-z][a-z0-9_]*",
    variant="[a-z][a-z0-9_]*",


def variant_dir(arch, variant):
    return f"{RESULTS}/variants/{arch}/{variant}"


def all_metrics():
    return [f"{variant_dir(v.arch, v.name)}/metrics.json" for v in GRID]


def device_path(arch, variant):
    return f"{RESULTS}/firmware/{arch}/{variant}/device.json"


def has_device(arch, variant):
    return config["firmware"]["enabled"] and any(v.int8 for v in GRID if (v.arch, v.name) == (arch, variant))


def first_model_c():
    """The generated C of the PTQ int8 model, shown in the report as 'the model as a C array'."""
    if not config["firmware"]["enabled"]:
        return []
    arch = V.model_ids(config)[0]
    return [f"{RESULTS}/firmware/{arch}/{V.PTQ_INT8}/model/model.c"]
