"""Measuring sparsity: of each prunable Keras kernel, and of the weights as stored in the TFLite file."""

import numpy as np

PRUNABLE = ("Conv2D", "DepthwiseConv2D", "Dense")


def kernel_sparsity(model):
    """{layer: sparsity of its kernel} for every Conv2D/DepthwiseConv2D/Dense layer of a plain Keras model."""
    out = {}
    for layer in model.layers:
        if type(layer).__name__ in PRUNABLE:
            k = layer.get_weights()[0]
            out[layer.name] = 1.0 - np.count_nonzero(k) / k.size
    return out


def tflite_weights(content: bytes):
    """[(op index, op name, int8/float weight array in TFLite layout)] for conv and fully connected ops."""
    from ..tfutil import ref_interpreter

    interp = ref_interpreter(content)
    out = []
    for op in interp._get_ops_details():
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            out.append((op["index"], op["op_name"], np.array(interp.get_tensor(int(op["inputs"][1])))))
    return out


def tflite_sparsity(content: bytes):
    """Sparsity of each weight tensor as stored in the TFLite file (what the device sees)."""
    return [
        {"op": f"{i}:{name}", "shape": list(w.shape), "sparsity": 1.0 - np.count_nonzero(w) / w.size}
        for i, name, w in tflite_weights(content)
    ]


def check_sparsity(achieved: dict, target: float, tolerance: float, what="achieved sparsity"):
    """Fail unless every pruned layer is within `tolerance` (absolute, 0.01 = one point) of the target."""
    bad = {k: v for k, v in achieved.items() if abs(v - target) > tolerance}
    if bad:
        raise RuntimeError(
            f"{what} misses the target {target:.2%} by more than {100 * tolerance:.1f} points: "
            + ", ".join(f"{k} {v:.2%}" for k, v in bad.items())
            + ". With few fine-tuning steps, check the pruning frequency and end step."
        )
