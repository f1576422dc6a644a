"""Building a variant's tfmot fake-quant model, calibrating its ranges, and QAT fine-tuning.

Calibration (PTQ, and the starting point of every QAT run). Weight ranges come from tfmot's own weight
quantizers (``LastValueQuantizer``: min/max of the current weights) called in training mode, which assigns
the range variables and nothing else. Activation ranges: tfmot's ``MovingAverageQuantizer`` starts at
[-6, 6] and moves with an EMA of decay 0.999, so a calibration of a few batches would leave the initial
range in place. Instead, each activation quantizer's range variables are set to the min/max (widened to
include 0, as tfmot does) of the float tensor it quantizes, over ``calibration_samples`` training clips (a
seeded random subset) -- the same statistics the TFLite converter's post-training calibration uses. The
weights are never touched (checked: ``weights_unchanged`` in the results). QAT then fine-tunes
with ``tinymighty.model.train.fit`` (best epoch by validation accuracy); its EMAs continue from the calibrated ranges.
"""

from pathlib import Path

import numpy as np

from .grid import Spec
from .minifloat import _minifloat_classes


def quantize(float_model, s: Spec):
    """The tfmot fake-quant model for one spec (weights copied from the float model)."""
    import tensorflow_model_optimization as tfmot

    qk = tfmot.quantization.keras
    if s.scheme == "default_8bit":
        return qk.quantize_model(float_model)
    if s.scheme == "n_bit":
        from tensorflow_model_optimization.quantization.keras.experimental.default_n_bit import (
            DefaultNBitQuantizeScheme,
        )

        scheme = DefaultNBitQuantizeScheme(num_bits_weight=s.weight_bits, num_bits_activation=s.activation_bits)
        with qk.quantize_scope():
            return qk.quantize_apply(qk.quantize_annotate_model(float_model), scheme)
    quantizer, config_cls, scheme_cls = _minifloat_classes()
    with qk.quantize_scope({"MinifloatQuantizer": quantizer, "MinifloatQuantizeConfig": config_cls}):
        return qk.quantize_apply(qk.quantize_annotate_model(float_model), scheme_cls(s.exponent, s.mantissa, s.special))


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
            out[f"{w.layer.name}/{weight.name.split('/')[-1].split(':')[0]}"] = np.asarray(
                quantizer(weight, False, weights=qvars)
            )
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
        by_name = {
            x.name.split("/")[-1].split(":")[0]: x for x in layer.non_trainable_weights if id(x) not in weight_vars
        }
        for prefix in ("post_activation", "output"):
            if f"{prefix}_min" in by_name:
                out.append((by_name[f"{prefix}_min"], by_name[f"{prefix}_max"], layer.layer.name))
        if "pre_activation_min" in by_name:
            raise NotImplementedError(f"{layer.name}: pre-activation ranges are not calibrated here")
    return out


def calibrate(qmodel, float_model, x_calib, batch_size=256):
    """PTQ calibration (no weight update): weight ranges by tfmot's weight quantizers, activation ranges from
    the min/max of the float activations over x_calib (see the module docstring). Returns the ranges set."""
    from ..tfutil import tf_keras

    set_weight_ranges(qmodel)
    targets = _activation_range_vars(qmodel)
    names = sorted({n for _, _, n in targets if n is not None})
    probe = tf_keras.Model(float_model.inputs, [float_model.get_layer(n).output for n in names])
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    lo[None], hi[None] = float(x_calib.min()), float(x_calib.max())
    for i in range(0, len(x_calib), batch_size):
        outs = probe(x_calib[i : i + batch_size], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for n, o in zip(names, outs, strict=False):
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
    idx = np.random.default_rng(seed).permutation(len(x))[: min(n, len(x))]
    return x[np.sort(idx)]


def weight_levels(qmodel):
    """Largest number of distinct values in any output channel (last axis) of each fake-quantized kernel."""
    out = {}
    for name, w in fake_quant_weights(qmodel).items():
        flat = w.reshape(-1, w.shape[-1])
        out[name] = int(max(len(np.unique(flat[:, c])) for c in range(flat.shape[1])))
    return out


def _fine_tune(qmodel, train, val, ft, seed, history_csv, tag, log):
    from ..model.train import fit

    ckpt = Path(str(history_csv) + ".weights.h5")
    try:
        fit(
            qmodel,
            train,
            val,
            ft["epochs"],
            ft["batch_size"],
            ft["learning_rate"],
            ckpt,
            history_csv,
            seed,
            tag=tag,
            log=log,
        )
    finally:
        ckpt.unlink(missing_ok=True)
    # The weight ranges in the checkpoint were taken one step before those weights; bring them up to date.
    set_weight_ranges(qmodel)
