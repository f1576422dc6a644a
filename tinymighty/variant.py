"""What one variant of a trained model is, and how model ids and variant names are spelled."""

import re
from dataclasses import dataclass

FLOAT = "float"
PTQ_INT8 = "ptq_int8"


@dataclass(frozen=True)
class Variant:
    arch: str
    name: str
    family: str
    tflite: bool = True  # has a model.tflite evaluated by the shared rule
    int8: bool = True  # int8 activations (weights int8 or INT4-packed): deployed to the device

    @property
    def label(self):
        return f"{self.arch}/{self.name}"


def model_ids(config):
    """One trained model per architecture and training seed: `tinyconv` trains with the global seed,
    `tinyconv_s7` with extra seed 7 (train.seeds), each with its own full variant grid."""
    archs = config["train"]["architectures"]
    return list(archs) + [f"{a}_s{s}" for s in config["train"].get("seeds", []) for a in archs]


def parse_model_id(model_id, default_seed):
    """`tinyconv_s7` -> ("tinyconv", 7); `tinyconv` -> ("tinyconv", default_seed)."""
    m = re.fullmatch(r"(.+)_s(\d+)", model_id)
    return (m.group(1), int(m.group(2))) if m else (model_id, default_seed)


def name_regex(variants):
    """A wildcard constraint matching exactly these variant names (so rules never compete for a file)."""
    names = sorted({v.name for v in variants})
    return "|".join(re.escape(n) for n in names) if names else "(?!)"
