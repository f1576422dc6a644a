"""Keras -> TFLite: float32, and full-integer int8 (int8 input and output) with a representative dataset."""

import numpy as np

from ..tfutil import tf


def representative(x: np.ndarray, n: int):
    def gen():
        for i in range(min(n, len(x))):
            yield [x[i : i + 1].astype(np.float32)]

    return gen


def to_float(model) -> bytes:
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def to_int8(model, calib_x: np.ndarray, n_samples: int, converter=None) -> bytes:
    conv = converter or tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative(calib_x, n_samples)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()
