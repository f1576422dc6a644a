"""The workflow step: one .tflite in, model.c/model.h and codegen.json out."""

from pathlib import Path

from ..provenance import write_json
from .emit import generate


def codegen_step(model_tflite, out_c, out_info, sparse_threshold, config=None):
    info = generate(model_tflite, Path(out_c).parent, sparse_threshold=sparse_threshold)
    write_json(out_info, info, config)
