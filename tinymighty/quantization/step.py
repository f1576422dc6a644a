"""One quantization variant's workflow job."""

import numpy as np

from .export import packed_weight_bytes, to_tflite, weight_storage
from .grid import Spec
from .methods import _fine_tune, calibrate, calibration_subset, quantize, weight_levels
from .minifloat import minifloat_max


def variant_step(arch, variant, inputs, outputs, params, log_path=None, config=None):
    """Build, calibrate, (fine-tune,) evaluate and, where TFLite can express it, export one variant.

    inputs: model (float .h5), train, val (QAT), test, float_predictions.
    outputs: model + info (exported variants) or host + predictions (fake-quant only); history (QAT).
    """
    from ..model.evaluate import classification
    from ..model.size import estimate
    from ..model.steps import write_variant
    from ..model.train import load_model
    from ..npio import load_split
    from ..provenance import write_json
    from ..runlog import make_log
    from ..tfutil import make_deterministic

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
    extra = {
        "method": s.method,
        "scheme": s.scheme,
        "bits": s.bits,
        "weight_bits": s.weight_bits,
        "activation_bits": s.activation_bits,
    }
    if s.scheme == "minifloat":
        extra.update(
            exponent=s.exponent,
            mantissa=s.mantissa,
            special=s.special,
            max_finite=minifloat_max(s.exponent, s.mantissa, s.special),
            rounding="round to nearest, ties to even; subnormals kept; saturate to +-max finite; "
            "no scale factor; biases and the final softmax stay float32",
        )
    else:
        x_train, y_train = load_split(inputs["train"])
        x_cal = calibration_subset(x_train, params["calibration_samples"], seed)
        ranges = calibrate(qmodel, float_model, x_cal)
        extra.update(
            calibration={"samples": int(len(x_cal)), "activation_ranges": ranges},
            weight_levels_max=weight_levels(qmodel),
        )
        log(f"{arch}/{variant}: calibrated on {len(x_cal)} training clips; ranges {ranges}")
        if s.method == "ptq":
            qw = {w.name: w.numpy() for w in qmodel.trainable_weights}
            fw = {w.name: w.numpy() for w in float_model.trainable_weights}
            extra["weights_unchanged"] = bool(
                all(np.array_equal(qw[k], fw[k]) for k in fw)
                and all(np.array_equal(a, b) for a, b in zip(before, float_model.get_weights(), strict=False))
            )
            if not extra["weights_unchanged"]:
                raise RuntimeError("PTQ calibration changed the weights")
        else:
            ft = params["fine_tune"]
            _fine_tune(
                qmodel,
                (x_train, y_train),
                load_split(inputs["val"]),
                ft,
                seed,
                outputs["history"],
                f"{arch}/{variant}",
                log,
            )
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
            raise RuntimeError(
                f"{variant}: converter stored weights as {storage}; the variant list assumed "
                f"{'int4' if s.int4 else 'int8'} (update Spec.int4)"
            )
        extra.update(
            weight_storage=storage, fake_quant_accuracy=res["accuracy"], fake_quant_agreement_with_float=agreement
        )
        write_variant(float_model, content, outputs["model"], outputs["info"], s.family, config, **extra)
        log(f"{arch}/{variant}: exported {len(content)} bytes of TFLite ({storage} weights)")
        return
    total = estimate(float_model)["total"]
    res.update({k: total[k] for k in ("params", "nonzero_params", "macs", "flops")})
    res.update(extra)
    res.update(
        arch=arch,
        variant=variant,
        family=s.family,
        agreement_with_float=agreement,
        tflite_bytes=None,
        gzip_bytes=None,
        host_latency=None,
        deployable=False,
        deployable_reason=s.deployable_reason,
    )
    np.save(outputs["predictions"], pred)
    write_json(outputs["host"], res, config)
