"""Feature arrays and input quantization: NumPy only, so light jobs never import TensorFlow."""

import numpy as np


def load_split(path):
    with np.load(path) as d:
        return d["x"], d["y"]


def quantize_input(x: np.ndarray, detail) -> np.ndarray:
    """Float features -> the model's input dtype (int8 models quantize with the input's scale/zero point)."""
    if detail["dtype"] == np.float32:
        return x.astype(np.float32)
    scale, zp = detail["quantization"]
    return np.clip(np.round(x / scale) + zp, -128, 127).astype(detail["dtype"])
