"""The variant grid as data: which (architecture, variant) jobs a config asks for.

Each family (float, ptq, quantization study, pruning study) lists its variants here. A variant either has
a `model.tflite` (then the shared `evaluate` rule measures it, and if it is full-int8 the firmware rules
deploy it), or it is fake-quant only and its own rule writes `host.json` with the same metrics.
"""
import re
from dataclasses import dataclass

FLOAT = "float"
PTQ_INT8 = "ptq_int8"


@dataclass(frozen=True)
class Variant:
    arch: str
    name: str
    family: str
    tflite: bool = True   # has a model.tflite evaluated by the shared rule
    int8: bool = True     # full-int8 TFLite: deployed to the device

    @property
    def label(self):
        return f"{self.arch}/{self.name}"


def _families():
    # Imported lazily: each study module owns its variant list and its config section.
    from . import pruning, quantization

    return (quantization.variants, pruning.variants)


def variants_for(config, arch):
    out = [Variant(arch, FLOAT, "float", int8=False), Variant(arch, PTQ_INT8, "ptq")]
    for family in _families():
        out.extend(family(config, arch))
    names = [v.name for v in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"variant names {sorted(dup)} are produced twice; check the quantization/pruning config")
    return out


def model_ids(config):
    """One trained model per architecture and training seed: `tinyconv` trains with the global seed,
    `tinyconv_s7` with extra seed 7 (train.seeds), each with its own full variant grid."""
    archs = config["train"]["architectures"]
    return list(archs) + [f"{a}_s{s}" for s in config["train"].get("seeds", []) for a in archs]


def parse_model_id(model_id, default_seed):
    """`tinyconv_s7` -> ("tinyconv", 7); `tinyconv` -> ("tinyconv", default_seed)."""
    m = re.fullmatch(r"(.+)_s(\d+)", model_id)
    return (m.group(1), int(m.group(2))) if m else (model_id, default_seed)


def grid(config):
    return [v for model in model_ids(config) for v in variants_for(config, model)]


def name_regex(variants):
    """A wildcard constraint matching exactly these variant names (so rules never compete for a file)."""
    names = sorted({v.name for v in variants})
    return "|".join(re.escape(n) for n in names) if names else "(?!)"
