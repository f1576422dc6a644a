"""A calibrated fake-quant model as an integer-only TFLite file, and what its weights take."""

import math

from .grid import Spec

_TFLITE_TYPES = {0: "float32", 2: "int32", 3: "uint8", 9: "int8", 7: "int16", 17: "int4"}


def tensor_types(content: bytes):
    from tensorflow.lite.python import schema_py_generated as S

    model = S.ModelT.InitFromObj(S.Model.GetRootAsModel(content, 0))
    out = []
    for t in model.subgraphs[0].tensors:
        buf = model.buffers[t.buffer].data
        out.append(
            {
                "name": t.name.decode() if isinstance(t.name, bytes) else t.name,
                "type": _TFLITE_TYPES.get(t.type, str(t.type)),
                "shape": [int(d) for d in t.shape],
                "const_bytes": 0 if buf is None else int(len(buf)),
            }
        )
    return out


def to_tflite(qmodel) -> bytes:
    """Fake-quant Keras model -> integer-only TFLite with int8 input and output. The ranges come from the
    fake-quant variables (no representative dataset). ``target_spec.supported_ops`` is not set to
    TFLITE_BUILTINS_INT8: TF 2.21 then asks for a representative dataset before it notices the fake-quant
    ops. Integer-only is checked on the result instead."""
    from ..tfutil import tf

    conv = tf.lite.TFLiteConverter.from_keras_model(qmodel)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    content = conv.convert()
    floats = [t["name"] for t in tensor_types(content) if t["type"] == "float32"]
    if floats:
        raise RuntimeError(f"converted model is not integer-only; float tensors: {floats}")
    return content


def weight_storage(content: bytes):
    types = {t["type"] for t in tensor_types(content) if t["const_bytes"] and len(t["shape"]) >= 2}
    return "int4" if "int4" in types else "int8"


def packed_weight_bytes(float_model, s: Spec):
    """Bytes of the weights if every kernel were stored at exactly its bit width (bit-packed), with biases
    as int32 (float32 for minifloat): a lower bound a custom kernel could reach, not a file that exists."""
    bits = s.weight_bits if s.scheme != "minifloat" else 1 + s.exponent + s.mantissa
    total = 0
    for layer in float_model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        total += math.ceil(int(ws[0].size) * bits / 8) + sum(4 * int(w.size) for w in ws[1:])
    return int(total)
