"""The variant grid as data: which (architecture, variant) jobs a config asks for.

A variant name is `<family>` or `<family>_<setting>`; every family maps to one Snakemake rule that
writes `results/variants/{arch}/{variant}/model.tflite` (deployable) or `host.json` directly (fake-quant).
"""

FLOAT = "float"
PTQ_INT8 = "ptq_int8"


def variant_names(config):
    """All variant names for one architecture, in report order."""
    names = [FLOAT, PTQ_INT8]
    return names


def is_int8(variant: str) -> bool:
    """Variants whose model.tflite is a full-int8 model, deployable to the device."""
    return variant != FLOAT


def grid(config):
    return [(arch, v) for arch in config["train"]["architectures"] for v in variant_names(config)]
