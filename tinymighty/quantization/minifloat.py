"""Minifloat formats (E{exponent}M{mantissa}): the rounding rule, and the tfmot Quantizer / QuantizeConfig /
QuantizeScheme that apply it to weights and activations. TFLite/TFLM have no FP8 tensor type: fake-quant only."""

import functools


def minifloat_max(exponent, mantissa, special="ieee"):
    """Largest finite value. ieee: the top exponent code is inf/NaN (E5M2: 57344); fn (OCP E4M3FN): the top
    exponent code holds numbers and only its all-ones mantissa is NaN (E4M3: 448)."""
    bias = 2 ** (exponent - 1) - 1
    if special == "ieee":
        return 2.0 ** ((2**exponent - 2) - bias) * (2.0 - 2.0**-mantissa)
    if mantissa < 1:
        raise ValueError("special=fn needs at least one mantissa bit")
    return 2.0 ** ((2**exponent - 1) - bias) * (2.0 - 2.0 ** (1 - mantissa))


def fake_minifloat(x, exponent, mantissa, special="ieee"):
    """Round float32 ``x`` to the nearest E{exponent}M{mantissa} value (TF ops, straight-through gradient).

    Rule: bias 2^(E-1) - 1; round to nearest, ties to even, on the mantissa (``tf.round`` is half-to-even
    and the grid step is a power of two, so the division is exact); subnormals are kept (gradual underflow:
    below 2^(1-bias) the step stays 2^(1-bias-M)), and values under half the smallest subnormal become 0;
    magnitudes are saturated to +-max finite (``minifloat_max``), never inf or NaN; no scale factor is
    applied (values are cast to the format as they are). The exponent is read from the float32 bit
    pattern, so it is exact; the arithmetic runs in float64, where every step is exact.
    """
    from ..tfutil import tf

    bias = 2 ** (exponent - 1) - 1
    emin = 1 - bias
    maxval = minifloat_max(exponent, mantissa, special)

    def round_to_format(x):
        a = tf.minimum(tf.abs(x), tf.constant(maxval, tf.float32))
        e = tf.bitwise.right_shift(tf.bitcast(a, tf.int32), 23) - 127  # a >= 0: sign bit is 0
        e = tf.maximum(e, emin)
        step = tf.pow(tf.constant(2.0, tf.float64), tf.cast(e - mantissa, tf.float64))
        q = tf.round(tf.cast(a, tf.float64) / step) * step
        return tf.cast(q, tf.float32) * tf.sign(x)

    # Forward: exactly the rounded value; backward: identity (straight-through estimator).
    return tf.grad_pass_through(round_to_format)(tf.convert_to_tensor(x, tf.float32))


@functools.lru_cache(maxsize=None)
def _minifloat_classes():
    """The tfmot Quantizer / QuantizeConfig / QuantizeScheme for minifloat (built lazily: importing tfmot pulls
    in TensorFlow, which the DAG construction must not)."""
    import tensorflow_model_optimization as tfmot

    from ..tfutil import tf_keras

    qk = tfmot.quantization.keras

    class MinifloatQuantizer(qk.quantizers.Quantizer):
        def __init__(self, exponent, mantissa, special="ieee"):
            self.exponent, self.mantissa, self.special = int(exponent), int(mantissa), special

        def build(self, tensor_shape, name, layer):
            return {}  # nothing to calibrate: the format fixes the grid

        def __call__(self, inputs, training, weights, **kwargs):
            return fake_minifloat(inputs, self.exponent, self.mantissa, self.special)

        def get_config(self):
            return {"exponent": self.exponent, "mantissa": self.mantissa, "special": self.special}

        def __eq__(self, other):
            return isinstance(other, MinifloatQuantizer) and self.get_config() == other.get_config()

        def __ne__(self, other):
            return not self.__eq__(other)

    class MinifloatQuantizeConfig(qk.QuantizeConfig):
        """Kernel and activation (and optionally the output) of one layer through MinifloatQuantizer.
        Biases stay float32, as they stay int32 in the integer schemes."""

        def __init__(self, weight_attrs, activation_attrs, quantize_output, exponent, mantissa, special):
            self.weight_attrs, self.activation_attrs = list(weight_attrs), list(activation_attrs)
            self.quantize_output = bool(quantize_output)
            self.fmt = {"exponent": int(exponent), "mantissa": int(mantissa), "special": special}

        def _q(self):
            return MinifloatQuantizer(**self.fmt)

        def get_weights_and_quantizers(self, layer):
            return [(getattr(layer, a), self._q()) for a in self.weight_attrs]

        def get_activations_and_quantizers(self, layer):
            return [(getattr(layer, a), self._q()) for a in self.activation_attrs]

        def set_quantize_weights(self, layer, quantize_weights):
            for a, w in zip(self.weight_attrs, quantize_weights, strict=False):
                setattr(layer, a, w)

        def set_quantize_activations(self, layer, quantize_activations):
            for a, act in zip(self.activation_attrs, quantize_activations, strict=False):
                setattr(layer, a, act)

        def get_output_quantizers(self, layer):
            return [self._q()] if self.quantize_output else []

        def get_config(self):
            return {
                "weight_attrs": self.weight_attrs,
                "activation_attrs": self.activation_attrs,
                "quantize_output": self.quantize_output,
                **self.fmt,
            }

    L = tf_keras.layers

    class MinifloatRegistry(qk.QuantizeRegistry):
        """Weighted layers: kernel + activation; Reshape (the network input, relabelled) and pooling:
        their output; data-movement layers and the final softmax are left as they are."""

        def __init__(self, fmt):
            self.fmt = fmt

        def supports(self, layer):
            return True

        def get_quantize_config(self, layer):
            if isinstance(layer, L.DepthwiseConv2D):
                args = (["depthwise_kernel"], ["activation"], False)
            elif isinstance(layer, (L.Conv2D, L.Dense)):
                args = (["kernel"], ["activation"], False)
            elif isinstance(layer, (L.Reshape, L.AveragePooling2D, L.MaxPooling2D)):
                args = ([], [], True)
            else:
                args = ([], [], False)
            return MinifloatQuantizeConfig(*args, **self.fmt)

    class _Identity(qk.QuantizeLayoutTransform):
        def apply(self, model, layer_quantize_map):
            return model, layer_quantize_map

    class MinifloatScheme(qk.QuantizeScheme):
        def __init__(self, exponent, mantissa, special="ieee"):
            self.fmt = {"exponent": exponent, "mantissa": mantissa, "special": special}

        def get_layout_transformer(self):
            return _Identity()

        def get_quantize_registry(self):
            return MinifloatRegistry(self.fmt)

    return MinifloatQuantizer, MinifloatQuantizeConfig, MinifloatScheme
