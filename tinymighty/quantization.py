"""Quantization study (issue 4): QAT int8, PTQ/QAT bit-width sweeps, minifloat, as workflow variants.

Everything is built with the pinned TensorFlow Model Optimization Toolkit (tfmot); nothing here writes its
own fake-quant op for the integer schemes.

Variants (names match ``[a-z][a-z0-9_]*``; the grid comes from ``config["quantization"]``):

* ``qat_int8``  ``tfmot.quantization.keras.quantize_model`` (default 8-bit scheme), fine-tuned from the float
  checkpoint, exported as a full-int8 TFLite model (int8 in and out) and deployed like ``ptq_int8``.
* ``ptq_b{N}`` / ``qat_b{N}``  weights *and* activations at N bits with tfmot's
  ``DefaultNBitQuantizeScheme`` (weights: symmetric, narrow range, per output channel for convolutions and
  per tensor for dense layers; activations and the network input: asymmetric, per tensor). PTQ only
  calibrates; QAT starts from the same calibrated model and is fine-tuned.
* ``ptq_w{W}a{A}`` / ``qat_w{W}a{A}``  optional mixed points (``mixed:`` in the config), same scheme.
* ``mf_e{E}m{M}``  minifloat fake-quant of weights and activations (see ``fake_minifloat``), plugged into
  tfmot as a ``Quantizer`` subclass inside a ``QuantizeConfig``; evaluated for accuracy only.

Calibration (PTQ, and the starting point of every QAT run). Weight ranges come from tfmot's own weight
quantizers (``LastValueQuantizer``: min/max of the current weights) called in training mode, which assigns
the range variables and nothing else. Activation ranges: tfmot's ``MovingAverageQuantizer`` starts at
[-6, 6] and moves with an EMA of decay 0.999, so a calibration of a few batches would leave the initial
range in place. Instead, each activation quantizer's range variables are set to the min/max (widened to
include 0, as tfmot does) of the float tensor it quantizes, over ``calibration_samples`` training clips (a
seeded random subset) -- the same statistics the TFLite converter's post-training calibration uses. The
weights are never touched (checked: ``weights_unchanged`` in the results). QAT then fine-tunes with
``tinymighty.train.fit`` (best epoch by validation accuracy); its EMAs continue from the calibrated ranges.

What TFLite can express (measured with TF 2.21; the variant list decides this before any job runs):

* 8-bit activations: exported. Weights at 5..8 bits are stored as int8 holding exactly 2^N - 1 levels;
  weights at 2..4 bits are packed by the converter as INT4 (two weights a byte), which TFLM runs but the
  project's firmware code generator (int8 only) does not take, so those are not deployed to the MCU.
* activations below 8 bits: not exported (``deployable: false``). The converter rejects 2..4-bit
  activations ("operand must be QI8/QUI8/QI16 ... but got i4") and silently widens 5..7-bit ranges to 8-bit
  scales, which would be a different model.
* minifloat: TFLite/TFLM have no FP8 tensor type; fake-quant only.
"""
import functools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .variants import Variant

DEFAULTS = {
    "enabled": True,
    "calibration_samples": 1000,
    "fine_tune": {"epochs": 10, "batch_size": 100, "learning_rate": 0.0005},
    "qat_int8": True,
    "sweep": {"bits": [2, 3, 4, 5, 6, 7, 8], "methods": ["ptq", "qat"]},
    "mixed": [],
    "minifloat": [{"exponent": 4, "mantissa": 3, "special": "fn"},
                  {"exponent": 5, "mantissa": 2, "special": "ieee"}],
    "cliff_points": 1.0,
}
FAMILIES = ("qat", "ptq_nbit", "qat_nbit", "minifloat")
QAT_INT8 = "qat_int8"


@dataclass(frozen=True)
class Spec:
    """One quantized variant, independent of the architecture."""
    name: str
    method: str                      # ptq | qat | minifloat
    scheme: str                      # default_8bit | n_bit | minifloat
    weight_bits: int | None = None
    activation_bits: int | None = None
    exponent: int | None = None
    mantissa: int | None = None
    special: str | None = None       # minifloat: ieee (top exponent code = inf/NaN) | fn (only all-ones = NaN)

    @property
    def family(self):
        if self.scheme == "default_8bit":
            return "qat"
        return "minifloat" if self.scheme == "minifloat" else f"{self.method}_nbit"

    @property
    def bits(self):
        """The x position in the bit-width plot: N for integer schemes, 1 + E + M for minifloat."""
        if self.scheme == "minifloat":
            return 1 + self.exponent + self.mantissa
        return self.weight_bits

    @property
    def tflite(self):
        return self.scheme != "minifloat" and self.activation_bits == 8

    @property
    def int4(self):
        return self.tflite and self.weight_bits <= 4

    @property
    def int8(self):
        return self.tflite and not self.int4

    @property
    def deployable_reason(self):
        if self.scheme == "minifloat":
            return (f"TFLite and TFLM have no 8-bit floating-point tensor type (nor E{self.exponent}M{self.mantissa}): "
                    f"the converter cannot express it, so only the fake-quant accuracy is measured")
        if self.activation_bits is not None and self.activation_bits < 8:
            if self.activation_bits <= 4:
                return (f"{self.activation_bits}-bit activations: the TFLite converter rejects sub-byte activations "
                        f"(kernels take QI8/QUI8/QI16 only), so only the fake-quant accuracy is measured")
            return (f"{self.activation_bits}-bit activations: TFLite kernels compute on 8-bit activations and the "
                    f"converter silently widens {self.activation_bits}-bit ranges to 8-bit scales, which would be a "
                    f"different model; only the fake-quant accuracy is measured")
        return None


def settings(config):
    """The quantization block with defaults filled in, or None when the study is off."""
    q = config.get("quantization")
    if q is None or not q.get("enabled", True):
        return None
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    for k, v in q.items():
        out[k] = {**DEFAULTS[k], **v} if isinstance(DEFAULTS.get(k), dict) else v
    return out


def specs(config):
    q = settings(config)
    if q is None:
        return []
    out = []
    if q["qat_int8"]:
        out.append(Spec(QAT_INT8, "qat", "default_8bit", 8, 8))
    methods = [m for m in ("ptq", "qat") if m in q["sweep"]["methods"]]
    for method in methods:
        for n in sorted(set(q["sweep"]["bits"])):
            out.append(Spec(f"{method}_b{n}", method, "n_bit", n, n))
    for method in methods:
        for mix in q["mixed"]:
            w, a = mix["weights"], mix["activations"]
            out.append(Spec(f"{method}_w{w}a{a}", method, "n_bit", w, a))
    for mf in q["minifloat"]:
        e, m = mf["exponent"], mf["mantissa"]
        out.append(Spec(f"mf_e{e}m{m}", "minifloat", "minifloat", exponent=e, mantissa=m,
                        special=mf.get("special", "ieee")))
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"quantization: variants {dup} are listed twice; check quantization.mixed/minifloat")
    return out


def variants(config, arch):
    return [Variant(arch, s.name, s.family, tflite=s.tflite, int8=s.int8) for s in specs(config)]


def spec(config, name):
    for s in specs(config):
        if s.name == name:
            return s
    raise KeyError(f"{name!r} is not a quantization variant of this config")


def job_params(config, name):
    """Exactly the settings one variant's job depends on (so editing one only reruns what it affects)."""
    s = spec(config, name)
    q = settings(config)
    out = {"spec": asdict(s)}
    if s.scheme != "minifloat":
        out.update(calibration_samples=q["calibration_samples"], seed=config["seed"])
    if s.method == "qat":
        out["fine_tune"] = dict(q["fine_tune"])
    return out


def rule_regex(config, kind):
    """Wildcard constraint for one rule kind: {ptq,qat}_{export,fakequant} or minifloat."""
    from .variants import name_regex

    def want(s):
        if kind == "minifloat":
            return s.scheme == "minifloat"
        method, out = kind.split("_")
        return s.method == method and s.scheme != "minifloat" and s.tflite == (out == "export")

    return name_regex([s for s in specs(config) if want(s)])


# ---------------------------------------------------------------------------------------------- minifloat

def minifloat_max(exponent, mantissa, special="ieee"):
    """Largest finite value. ieee: the top exponent code is inf/NaN (E5M2: 57344); fn (OCP E4M3FN): the top
    exponent code holds numbers and only its all-ones mantissa is NaN (E4M3: 448)."""
    bias = 2 ** (exponent - 1) - 1
    if special == "ieee":
        return 2.0 ** ((2 ** exponent - 2) - bias) * (2.0 - 2.0 ** -mantissa)
    if mantissa < 1:
        raise ValueError("special=fn needs at least one mantissa bit")
    return 2.0 ** ((2 ** exponent - 1) - bias) * (2.0 - 2.0 ** (1 - mantissa))


def fake_minifloat(x, exponent, mantissa, special="ieee"):
    """Round float32 ``x`` to the nearest E{exponent}M{mantissa} value (TF ops, straight-through gradient).

    Rule: bias 2^(E-1) - 1; round to nearest, ties to even, on the mantissa (``tf.round`` is half-to-even
    and the grid step is a power of two, so the division is exact); subnormals are kept (gradual underflow:
    below 2^(1-bias) the step stays 2^(1-bias-M)), and values under half the smallest subnormal become 0;
    magnitudes are saturated to +-max finite (``minifloat_max``), never inf or NaN; no scale factor is
    applied (values are cast to the format as they are). The exponent is read from the float32 bit
    pattern, so it is exact; the arithmetic runs in float64, where every step is exact.
    """
    from .tfutil import tf

    bias = 2 ** (exponent - 1) - 1
    emin = 1 - bias
    maxval = minifloat_max(exponent, mantissa, special)

    def round_to_format(x):
        a = tf.minimum(tf.abs(x), tf.constant(maxval, tf.float32))
        e = tf.bitwise.right_shift(tf.bitcast(a, tf.int32), 23) - 127      # a >= 0: sign bit is 0
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

    from .tfutil import tf_keras

    qk = tfmot.quantization.keras

    class MinifloatQuantizer(qk.quantizers.Quantizer):
        def __init__(self, exponent, mantissa, special="ieee"):
            self.exponent, self.mantissa, self.special = int(exponent), int(mantissa), special

        def build(self, tensor_shape, name, layer):
            return {}   # nothing to calibrate: the format fixes the grid

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
            for a, w in zip(self.weight_attrs, quantize_weights):
                setattr(layer, a, w)

        def set_quantize_activations(self, layer, quantize_activations):
            for a, act in zip(self.activation_attrs, quantize_activations):
                setattr(layer, a, act)

        def get_output_quantizers(self, layer):
            return [self._q()] if self.quantize_output else []

        def get_config(self):
            return {"weight_attrs": self.weight_attrs, "activation_attrs": self.activation_attrs,
                    "quantize_output": self.quantize_output, **self.fmt}

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


# -------------------------------------------------------------------------------------- building + ranges

def quantize(float_model, s: Spec):
    """The tfmot fake-quant model for one spec (weights copied from the float model)."""
    import tensorflow_model_optimization as tfmot

    qk = tfmot.quantization.keras
    if s.scheme == "default_8bit":
        return qk.quantize_model(float_model)
    if s.scheme == "n_bit":
        from tensorflow_model_optimization.quantization.keras.experimental.default_n_bit import (
            DefaultNBitQuantizeScheme)

        scheme = DefaultNBitQuantizeScheme(num_bits_weight=s.weight_bits, num_bits_activation=s.activation_bits)
        with qk.quantize_scope():
            return qk.quantize_apply(qk.quantize_annotate_model(float_model), scheme)
    quantizer, config_cls, scheme_cls = _minifloat_classes()
    with qk.quantize_scope({"MinifloatQuantizer": quantizer, "MinifloatQuantizeConfig": config_cls}):
        return qk.quantize_apply(qk.quantize_annotate_model(float_model),
                                 scheme_cls(s.exponent, s.mantissa, s.special))


def _wrappers(qmodel):
    import tensorflow_model_optimization as tfmot

    return [l for l in qmodel.layers if isinstance(l, tfmot.quantization.keras.QuantizeWrapper)]


def set_weight_ranges(qmodel):
    """Run every weight quantizer once in training mode: tfmot's own rule sets its range variables from the
    current weights (LastValueQuantizer: min/max, symmetric). The weights themselves are not changed."""
    for w in _wrappers(qmodel):
        for weight, quantizer, qvars in w._weight_vars:
            quantizer(weight, True, weights=qvars)


def fake_quant_weights(qmodel):
    """{layer name: the weight tensors as the quantized model uses them at inference}."""
    out = {}
    for w in _wrappers(qmodel):
        for weight, quantizer, qvars in w._weight_vars:
            out[f"{w.layer.name}/{weight.name.split('/')[-1].split(':')[0]}"] = \
                np.asarray(quantizer(weight, False, weights=qvars))
    return out


def _activation_range_vars(qmodel):
    """[(min_var, max_var, name of the float layer whose output it quantizes, or None for the model input)]."""
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_layer import QuantizeLayer

    qk = tfmot.quantization.keras
    out = []
    for layer in qmodel.layers:
        if isinstance(layer, QuantizeLayer):
            if layer.input is not qmodel.inputs[0]:
                raise NotImplementedError(f"{layer.name}: a QuantizeLayer that is not on the model input")
            v = {x.name.split("/")[-1].split(":")[0]: x for x in layer.non_trainable_weights}
            mins = [x for k, x in sorted(v.items()) if k.endswith("_min")]
            maxs = [x for k, x in sorted(v.items()) if k.endswith("_max")]
            if mins:
                out.append((mins[0], maxs[0], None))
            continue
        if not isinstance(layer, qk.QuantizeWrapper):
            continue
        weight_vars = {id(v) for _, _, qv in layer._weight_vars for v in qv.values()}
        by_name = {x.name.split("/")[-1].split(":")[0]: x for x in layer.non_trainable_weights
                   if id(x) not in weight_vars}
        for prefix in ("post_activation", "output"):
            if f"{prefix}_min" in by_name:
                out.append((by_name[f"{prefix}_min"], by_name[f"{prefix}_max"], layer.layer.name))
        if "pre_activation_min" in by_name:
            raise NotImplementedError(f"{layer.name}: pre-activation ranges are not calibrated here")
    return out


def calibrate(qmodel, float_model, x_calib, batch_size=256):
    """PTQ calibration (no weight update): weight ranges by tfmot's weight quantizers, activation ranges from
    the min/max of the float activations over x_calib (see the module docstring). Returns the ranges set."""
    from .tfutil import tf_keras

    set_weight_ranges(qmodel)
    targets = _activation_range_vars(qmodel)
    names = sorted({n for _, _, n in targets if n is not None})
    probe = tf_keras.Model(float_model.inputs, [float_model.get_layer(n).output for n in names])
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    lo[None], hi[None] = float(x_calib.min()), float(x_calib.max())
    for i in range(0, len(x_calib), batch_size):
        outs = probe(x_calib[i:i + batch_size], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for n, o in zip(names, outs):
            o = np.asarray(o)
            lo[n], hi[n] = min(lo[n], float(o.min())), max(hi[n], float(o.max()))
    ranges = {}
    for vmin, vmax, n in targets:
        if vmin.shape.rank:
            raise NotImplementedError("per-channel activation ranges are not calibrated here")
        vmin.assign(min(lo[n], 0.0))
        vmax.assign(max(hi[n], 0.0))
        ranges[n or "input"] = [min(lo[n], 0.0), max(hi[n], 0.0)]
    return ranges


def calibration_subset(x, n, seed):
    idx = np.random.default_rng(seed).permutation(len(x))[:min(n, len(x))]
    return x[np.sort(idx)]


def weight_levels(qmodel):
    """Largest number of distinct values in any output channel (last axis) of each fake-quantized kernel."""
    out = {}
    for name, w in fake_quant_weights(qmodel).items():
        flat = w.reshape(-1, w.shape[-1])
        out[name] = int(max(len(np.unique(flat[:, c])) for c in range(flat.shape[1])))
    return out


# ------------------------------------------------------------------------------------------------- export

_TFLITE_TYPES = {0: "float32", 2: "int32", 3: "uint8", 9: "int8", 7: "int16", 17: "int4"}


def tensor_types(content: bytes):
    from tensorflow.lite.python import schema_py_generated as S

    model = S.ModelT.InitFromObj(S.Model.GetRootAsModel(content, 0))
    out = []
    for t in model.subgraphs[0].tensors:
        buf = model.buffers[t.buffer].data
        out.append({"name": t.name.decode() if isinstance(t.name, bytes) else t.name,
                    "type": _TFLITE_TYPES.get(t.type, str(t.type)), "shape": [int(d) for d in t.shape],
                    "const_bytes": 0 if buf is None else int(len(buf))})
    return out


def to_tflite(qmodel) -> bytes:
    """Fake-quant Keras model -> integer-only TFLite with int8 input and output. The ranges come from the
    fake-quant variables (no representative dataset). ``target_spec.supported_ops`` is not set to
    TFLITE_BUILTINS_INT8: TF 2.21 then asks for a representative dataset before it notices the fake-quant
    ops. Integer-only is checked on the result instead."""
    from .tfutil import tf

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


# --------------------------------------------------------------------------------------------- the step

def _fine_tune(qmodel, train, val, ft, seed, history_csv, tag, log):
    from .train import fit

    ckpt = Path(str(history_csv) + ".weights.h5")
    try:
        fit(qmodel, train, val, ft["epochs"], ft["batch_size"], ft["learning_rate"], ckpt, history_csv, seed,
            tag=tag, log=log)
    finally:
        ckpt.unlink(missing_ok=True)
    # The weight ranges in the checkpoint were taken one step before those weights; bring them up to date.
    set_weight_ranges(qmodel)


def variant_step(arch, variant, inputs, outputs, params, log_path=None, config=None):
    """Build, calibrate, (fine-tune,) evaluate and, where TFLite can express it, export one variant.

    inputs: model (float .h5), train, val (QAT), test, float_predictions.
    outputs: model + info (exported variants) or host + predictions (fake-quant only); history (QAT).
    """
    from .evaluate import classification
    from .provenance import write_json
    from .runlog import make_log
    from .size import estimate
    from .steps import write_variant
    from .tfutil import make_deterministic
    from .train import load_model, load_split

    log = make_log(log_path)
    s = Spec(**params["spec"])
    seed = params.get("seed", 0)
    make_deterministic(seed)
    float_model = load_model(inputs["model"])
    before = [w.copy() for w in float_model.get_weights()]
    with np.load(inputs["test"]) as d:
        x_test, y_test, labels = d["x"], d["y"], [str(v) for v in d["labels"]]
    float_pred = np.load(inputs["float_predictions"])

    qmodel = quantize(float_model, s)
    extra = {"method": s.method, "scheme": s.scheme, "bits": s.bits, "weight_bits": s.weight_bits,
             "activation_bits": s.activation_bits}
    if s.scheme == "minifloat":
        extra.update(exponent=s.exponent, mantissa=s.mantissa, special=s.special,
                     max_finite=minifloat_max(s.exponent, s.mantissa, s.special),
                     rounding="round to nearest, ties to even; subnormals kept; saturate to +-max finite; "
                              "no scale factor; biases and the final softmax stay float32")
    else:
        x_train, y_train = load_split(inputs["train"])
        x_cal = calibration_subset(x_train, params["calibration_samples"], seed)
        ranges = calibrate(qmodel, float_model, x_cal)
        extra.update(calibration={"samples": int(len(x_cal)), "activation_ranges": ranges},
                     weight_levels_max=weight_levels(qmodel))
        log(f"{arch}/{variant}: calibrated on {len(x_cal)} training clips; ranges {ranges}")
        if s.method == "ptq":
            qw = {w.name: w.numpy() for w in qmodel.trainable_weights}
            fw = {w.name: w.numpy() for w in float_model.trainable_weights}
            extra["weights_unchanged"] = bool(all(np.array_equal(qw[k], fw[k]) for k in fw) and
                                              all(np.array_equal(a, b) for a, b in
                                                  zip(before, float_model.get_weights())))
            if not extra["weights_unchanged"]:
                raise RuntimeError("PTQ calibration changed the weights")
        else:
            ft = params["fine_tune"]
            _fine_tune(qmodel, (x_train, y_train), load_split(inputs["val"]), ft, seed, outputs["history"],
                       f"{arch}/{variant}", log)
            extra.update(fine_tune=dict(ft), weight_levels_max=weight_levels(qmodel))

    pred = np.asarray(qmodel.predict(x_test, batch_size=256, verbose=0)).argmax(axis=1)
    res = classification(y_test, pred, labels)
    agreement = float(np.mean(pred == float_pred))
    extra["packed_weight_bytes"] = packed_weight_bytes(float_model, s)
    log(f"{arch}/{variant}: fake-quant accuracy {res['accuracy']:.4f}, agreement with float {agreement:.4f}")

    if s.tflite:
        content = to_tflite(qmodel)
        storage = weight_storage(content)
        if (storage == "int4") != s.int4:
            raise RuntimeError(f"{variant}: converter stored weights as {storage}; the variant list assumed "
                               f"{'int4' if s.int4 else 'int8'} (update Spec.int4)")
        extra.update(weight_storage=storage, fake_quant_accuracy=res["accuracy"],
                     fake_quant_agreement_with_float=agreement)
        if s.int4:
            extra["firmware_note"] = ("INT4-packed weights: checked under TFLM's Python interpreter by the evaluate "
                                      "rule, not sent to the project firmware (its code generator takes int8 only)")
        write_variant(float_model, content, outputs["model"], outputs["info"], s.family, config, **extra)
        log(f"{arch}/{variant}: exported {len(content)} bytes of TFLite ({storage} weights)")
        return
    total = estimate(float_model)["total"]
    res.update({k: total[k] for k in ("params", "nonzero_params", "macs", "flops")})
    res.update(extra)
    res.update(arch=arch, variant=variant, family=s.family, agreement_with_float=agreement, tflite_bytes=None,
               gzip_bytes=None, host_latency=None, deployable=False, deployable_reason=s.deployable_reason)
    np.save(outputs["predictions"], pred)
    write_json(outputs["host"], res, config)


# ------------------------------------------------------------------------------------------------- report

def _curve(rows, family):
    pts = sorted((r["host"]["bits"], r) for r in rows if r["family"] == family and
                 r["host"].get("weight_bits") == r["host"].get("activation_bits"))
    return [r for _, r in pts]


def cliff_sentence(name, points, float_acc, threshold_points):
    """Where a curve (list of (bits, accuracy), any order) drops more than `threshold_points` below float."""
    pts = sorted(points, reverse=True)
    if not pts:
        return ""
    thr = threshold_points / 100.0
    below = [b for b, a in pts if float_acc - a > thr]
    within = [b for b, a in pts if float_acc - a <= thr]
    lo, hi = pts[-1][0], pts[0][0]
    unit = "point" if threshold_points == 1 else "points"
    if not below:
        return (f"{name} stays within {threshold_points:g} {unit} of float at every bit-width tested "
                f"({hi} down to {lo} bits).")
    cliff = max(below)
    acc = dict(pts)[cliff]
    text = f"{name} falls more than {threshold_points:g} {unit} below float at {cliff} bits"
    text += f" ({100 * acc:.1f}% vs {100 * float_acc:.1f}%, {100 * (acc - float_acc):+.1f} points)"
    above = [b for b in within if b > cliff]
    if above:
        span = f"at {hi} bits" if min(above) == hi else f"from {hi} down to {min(above)} bits"
        text += f"; it is within {threshold_points:g} {unit} {span}"
    else:
        text += f"; it is already below at the widest width tested ({hi} bits)"
    back = sorted(b for b in within if b < cliff)
    if back:
        text += (f". Not monotone: {', '.join(map(str, back))} bits are back within {threshold_points:g} {unit}, "
                 f"so single points are noisy")
    return text + "."


def report_context(rows, config, figs):
    """Context for report/templates/quantization.html.j2 (empty when the study is off)."""
    q = settings(config)
    if q is None:
        return {}
    mine = [r for r in rows if r["family"] in FAMILIES]
    if not mine:
        return {}
    thr = float(q["cliff_points"])
    out = {"quant_rows": [], "quant_figs": {}, "quant_cliffs": {}, "quant_checks": {},
           "quant_threshold": thr, "quant_settings": q}
    from .variants import model_ids

    for arch in model_ids(config):
        arows = [r for r in rows if r["arch"] == arch]
        base = next((r for r in arows if r["variant"] == "float"), None)
        if base is None:
            continue
        fa = base["accuracy"]
        qrows = [r for r in arows if r["family"] in FAMILIES or r["variant"] in ("float", "ptq_int8")]
        for r in sorted(qrows, key=_row_order):
            h = r["host"]
            out["quant_rows"].append({
                "label": r["label"], "variant": r["variant"], "family": r["family"],
                "bits": h.get("bits", 32 if r["variant"] == "float" else 8),
                "weight_bits": h.get("weight_bits"), "activation_bits": h.get("activation_bits"),
                "format": _format(r), "accuracy": r["accuracy"], "delta": r["accuracy"] - fa,
                "agreement": r["agreement"], "tflite_bytes": r["tflite_bytes"],
                "packed_weight_bytes": h.get("packed_weight_bytes"), "storage": h.get("weight_storage"),
                "deployable": r.get("deployable"), "reason": h.get("deployable_reason"),
                "tflm": (r.get("tflm") or {}).get("bitexact"),
                "fake_quant_accuracy": h.get("fake_quant_accuracy"), "n": h.get("n")})
        ptq, qat = _curve(arows, "ptq_nbit"), _curve(arows, "qat_nbit")
        cl = [cliff_sentence(name, [(r["host"]["bits"], r["accuracy"]) for r in curve], fa, thr)
              for name, curve in (("PTQ", ptq), ("QAT", qat)) if curve]
        out["quant_cliffs"][arch] = [c for c in cl if c]
        out["quant_checks"][arch] = _expectations(arows, fa, base["host"].get("n"))
        out["quant_figs"][arch] = bits_figure(figs, arch, arows, fa, thr)
    return out


def _format(r):
    h = r["host"]
    if r["family"] == "minifloat":
        return f"E{h['exponent']}M{h['mantissa']} ({h.get('special')})"
    if r["variant"] == "float":
        return "float32"
    if r["variant"] == "ptq_int8":
        return "W8A8 (TFLite converter PTQ)"
    if h.get("weight_bits") is not None:
        return f"W{h['weight_bits']}A{h['activation_bits']}"
    return ""


def _row_order(r):
    order = {"float": 0, "ptq": 1, "qat": 2, "ptq_nbit": 3, "qat_nbit": 4, "minifloat": 5}
    h = r["host"]
    mixed = h.get("weight_bits") != h.get("activation_bits")
    return (order.get(r["family"], 9), mixed, -(h.get("bits") or 0), r["variant"])


def _expectations(arows, fa, n):
    """The issue's expectations, stated against what was measured (never tuned)."""
    by = {r["variant"]: r for r in arows}
    out = []
    se = 100 * math.sqrt(max(fa * (1 - fa), 1e-12) / n) if n else None
    if "qat_int8" in by:
        d = 100 * (by["qat_int8"]["accuracy"] - fa)
        out.append({"claim": "QAT int8 within 0.5 points of float", "holds": d >= -0.5,
                    "measured": f"QAT int8 {100 * by['qat_int8']['accuracy']:.2f}% vs float {100 * fa:.2f}% "
                                f"({d:+.2f} points" + ("; above float: the fine-tuning epochs also train the "
                                                       "model further)" if d > 0.5 else ")")})
    if "qat_b4" in by and "ptq_b4" in by:
        d = 100 * (by["qat_b4"]["accuracy"] - by["ptq_b4"]["accuracy"])
        clear = se is not None and d > 2 * se
        out.append({"claim": "QAT at 4 bits clearly above PTQ at 4 bits", "holds": clear,
                    "measured": f"QAT 4-bit {100 * by['qat_b4']['accuracy']:.2f}% vs PTQ 4-bit "
                                f"{100 * by['ptq_b4']['accuracy']:.2f}% ({d:+.2f} points"
                                + (f"; 'clearly' taken as more than 2 standard errors = {2 * se:.1f} points "
                                   f"on {n} test clips)" if se is not None else ")")})
    return out


def bits_figure(figs, arch, arows, float_acc, thr):
    plt = figs.plt
    mf = sorted((r for r in arows if r["family"] == "minifloat"), key=lambda r: r["variant"])
    fig, axes = plt.subplots(1, 2 if mf else 1, figsize=(10 if mf else 6.5, 3.8), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1]} if mf else None)
    ax = axes[0, 0]
    for family, label, marker in (("ptq_nbit", "PTQ (W=A=N bits)", "o"), ("qat_nbit", "QAT (W=A=N bits)", "s")):
        c = _curve(arows, family)
        if c:
            ax.plot([r["host"]["bits"] for r in c], [100 * r["accuracy"] for r in c], marker=marker, label=label)
    ax.axhline(100 * float_acc, color="k", ls="--", lw=1, label=f"float ({100 * float_acc:.1f}%)")
    ax.axhline(100 * float_acc - thr, color="grey", ls=":", lw=1, label=f"float - {thr:g} pt")
    for r in arows:
        h = r["host"]
        if r["variant"] == "qat_int8":
            ax.scatter([8.1], [100 * r["accuracy"]], marker="*", s=90, color="C3", zorder=5,
                       label="QAT int8 (tfmot default, TFLite)")
        elif r["variant"] == "ptq_int8":
            ax.scatter([7.9], [100 * r["accuracy"]], marker="x", s=50, color="C4", zorder=5,
                       label="PTQ int8 (TFLite converter)")
        elif r["family"] in ("ptq_nbit", "qat_nbit") and h.get("weight_bits") != h.get("activation_bits"):
            ptq = r["family"] == "ptq_nbit"
            ax.scatter([h["weight_bits"] + (-0.12 if ptq else 0.12)], [100 * r["accuracy"]], marker="^" if ptq else "v",
                       s=45, zorder=5, label=f"{r['family'][:3].upper()} W{h['weight_bits']}A{h['activation_bits']}")
    ax.set(xlabel="bits (weights and activations)", ylabel="test accuracy (%)",
           title=f"{arch}: accuracy vs bit-width")
    ax.legend(fontsize=7, loc="best")
    if mf:
        bx = axes[0, 1]
        names = [f"E{r['host']['exponent']}M{r['host']['mantissa']}" for r in mf]
        bx.bar(names, [100 * r["accuracy"] for r in mf], color="C2")
        bx.axhline(100 * float_acc, color="k", ls="--", lw=1)
        bx.set(title="minifloat (8-bit formats)" if all(r["host"]["bits"] == 8 for r in mf) else "minifloat",
               ylabel="test accuracy (%)", ylim=ax.get_ylim())
    return figs.save(fig, f"quant_bits_{arch}")
