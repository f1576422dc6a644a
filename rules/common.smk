# Shared helpers for all rule files: the variant grid and path conventions.
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


def all_host_metrics():
    return [f"{variant_dir(v.arch, v.name)}/host.json" for v in GRID]


def all_device_metrics():
    if not config["firmware"]["enabled"]:
        return []
    return [f"{RESULTS}/firmware/{v.arch}/{v.name}/device.json" for v in GRID if v.int8]
