# Shared helpers for all rule files: the variant grid and path conventions.
from tinymighty import variants as V

SPLITS = ["training", "validation", "testing"]
RESULTS = "results"


wildcard_constraints:
    split="training|validation|testing",
    arch="[a-z][a-z0-9_]*",
    variant="[a-z][a-z0-9_]*",


def variant_dir(arch, variant):
    return f"{RESULTS}/variants/{arch}/{variant}"


def all_host_metrics():
    return [f"{variant_dir(a, v)}/host.json" for a, v in V.grid(config)]


def all_device_metrics():
    if not config["firmware"]["enabled"]:
        return []
    return [f"{RESULTS}/firmware/{a}/{v}/device.json" for a, v in V.grid(config) if V.is_int8(v)]
