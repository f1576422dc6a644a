"""TFLite's prepare-time arithmetic, mirrored so the constants match bit for bit."""

from __future__ import annotations

import math

import numpy as np


def _round_half_away(x: float) -> int:
    """std::round / TfLiteRound: halves go away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplier: real == mult * 2^(shift - 31), mult a Q31 significand."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:  # flush to zero like TFLite instead of shifting every bit out
        return 0, 0
    return q_fixed, shift


def activation_range(activation: int, scale, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 outputs (float32 divide, std::round)."""

    def quantize(f):
        return zero_point + _round_half_away(float(np.float32(f) / np.float32(scale)))

    lo, hi = -128, 127
    if activation == 1:  # RELU
        return max(lo, quantize(0.0)), hi
    if activation == 2:  # RELU_N1_TO_1
        return max(lo, quantize(-1.0)), min(hi, quantize(1.0))
    if activation == 3:  # RELU6
        return max(lo, quantize(0.0)), min(hi, quantize(6.0))
    if activation == 0:
        return lo, hi
    raise ValueError(f"fused activation {activation}")


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius with 5 integer bits (TFLM int8 softmax)."""
    int_bits = 5
    real = min(float(beta) * float(input_scale) * (1 << (31 - int_bits)), (1 << 31) - 1.0)
    mult, left_shift = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << int_bits) - 1) * (1 << (31 - int_bits)) / (1 << left_shift))
    return mult, left_shift, -radius


def padding(stride: int, dilation: int, in_size: int, k: int, out_size: int) -> int:
    """ComputePadding: the top/left share; any odd extra pixel goes bottom/right."""
    span = (k - 1) * dilation + 1
    return max(((out_size - 1) * stride + span - in_size) // 2, 0)


def out_size(same: bool, stride: int, dilation: int, in_size: int, k: int) -> int:
    span = (k - 1) * dilation + 1
    return (in_size + stride - 1) // stride if same else (in_size + stride - span) // stride
