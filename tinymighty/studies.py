"""The variant grid as data: which (architecture, variant) jobs a config asks for.

Each family (float, ptq, quantization study, pruning study) lists its variants here. A variant either has
a `model.tflite` (then the shared `evaluate` rule measures it, and if it is full-int8 the firmware rules
deploy it), or it is fake-quant only and its own rule writes `host.json` with the same metrics.

The one module that composes the studies' grids: nothing in the studies imports it. Imports no TensorFlow.
"""

from .pruning import grid as pruning_grid
from .quantization import grid as quantization_grid
from .variant import FLOAT, PTQ_INT8, Variant, model_ids


def _families():
    # Each study owns its variant list and its config section.
    return (quantization_grid.variants, pruning_grid.variants)


def variants_for(config, arch):
    out = [Variant(arch, FLOAT, "float", int8=False), Variant(arch, PTQ_INT8, "ptq")]
    for family in _families():
        out.extend(family(config, arch))
    names = [v.name for v in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"variant names {sorted(dup)} are produced twice; check the quantization/pruning config")
    return out


def grid(config):
    return [v for model in model_ids(config) for v in variants_for(config, model)]
