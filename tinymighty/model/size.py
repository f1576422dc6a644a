"""Analytic size estimate of a Keras model: parameters, MACs, FLOPs, weight bytes and peak activation RAM.

FLOP convention: FLOPs = 2 x MACs (one multiply and one add each) + one add per bias element per output
position. The seed reported 672,004 for TinyConv: 2 x 336,000 plus the dense bias only; we report both.
"""

import numpy as np

from ..budgets import FLASH_BYTES, RAM_BYTES

# Layers that only relabel a buffer: they need no memory of their own at inference time.
_ALIASING = {"Reshape", "Flatten", "Dropout", "InputLayer"}


def _prod(shape):
    return int(np.prod([d for d in shape if d is not None]))


def layer_table(model):
    rows = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        out_shape = layer.output.shape[1:]
        weights = layer.get_weights()
        params = sum(int(w.size) for w in weights)
        nonzero = sum(int(np.count_nonzero(w)) for w in weights)
        macs = bias_adds = 0
        if kind in ("Conv2D", "DepthwiseConv2D", "Dense"):
            kernel = weights[0]
            positions = _prod(out_shape[:-1]) if len(out_shape) > 1 else 1
            if kind == "Conv2D":
                macs = positions * int(kernel.size)
            elif kind == "DepthwiseConv2D":
                macs = positions * int(kernel.size)
            else:
                macs = int(kernel.size)
            bias_adds = positions * int(out_shape[-1]) if layer.use_bias else 0
        elif kind in ("AveragePooling2D",):
            macs = _prod(out_shape) * _prod(layer.pool_size)
        rows.append(
            {
                "layer": layer.name,
                "type": kind,
                "output_shape": list(out_shape),
                "params": params,
                "nonzero_params": nonzero,
                "macs": macs,
                "flops": 2 * macs + bias_adds,
                "bias_adds": bias_adds,
                "weight_bytes_float32": 4 * params,
                "weight_bytes_int8": _int8_weight_bytes(layer, weights),
                "output_elems": _prod(out_shape),
                "aliases_input": kind in _ALIASING,
            }
        )
    return rows


def _int8_weight_bytes(layer, weights):
    # TFLite int8: kernels are int8, biases stay int32.
    if not weights:
        return 0
    if len(weights) == 2 and getattr(layer, "use_bias", False):
        return int(weights[0].size) + 4 * int(weights[1].size)
    return sum(int(w.size) for w in weights)


def peak_activation_bytes(model, rows, bytes_per_elem):
    """Peak of (input + output) over a sequential chain: each op needs its input and output alive at once."""
    live_in = _prod(model.inputs[0].shape[1:])
    peak = live_in * bytes_per_elem
    for r in rows:
        if r["aliases_input"]:
            continue
        peak = max(peak, (live_in + r["output_elems"]) * bytes_per_elem)
        live_in = r["output_elems"]
    return peak


def estimate(model):
    rows = layer_table(model)
    total = {
        k: sum(r[k] for r in rows)
        for k in ("params", "nonzero_params", "macs", "flops", "bias_adds", "weight_bytes_float32", "weight_bytes_int8")
    }
    dense_bias = sum(r["bias_adds"] for r in rows if r["type"] == "Dense")
    total["flops_seed_convention"] = 2 * total["macs"] + dense_bias
    total["peak_ram_float32"] = peak_activation_bytes(model, rows, 4)
    total["peak_ram_int8"] = peak_activation_bytes(model, rows, 1)
    total["flash_share_int8"] = total["weight_bytes_int8"] / FLASH_BYTES
    total["ram_share_int8"] = total["peak_ram_int8"] / RAM_BYTES
    total["flash_share_float32"] = total["weight_bytes_float32"] / FLASH_BYTES
    total["ram_share_float32"] = total["peak_ram_float32"] / RAM_BYTES
    return {
        "layers": rows,
        "total": total,
        "flop_convention": "FLOPs = 2 x MACs + one add per bias element per output position; "
        "flops_seed_convention counts only the dense bias, as the seed's 672,004 did",
    }
