"""The model steps of the workflow (train, size, convert, evaluate): paths and parameters in, files out."""

from pathlib import Path

import numpy as np

from ..provenance import read_json, read_results, write_json
from ..runlog import make_log


def train_step(arch, train_npz, val_npz, model_out, history_csv, train, seed, log_path=None):
    from .train import train_float

    train_float(arch, train_npz, val_npz, model_out, history_csv, train, seed, log=make_log(log_path))


def size_step(model_path, out_json, config=None):
    from .size import estimate
    from .train import load_model

    write_json(out_json, estimate(load_model(model_path)), config)


def _write_bytes(path, content: bytes):
    tmp = Path(str(path) + ".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)


def write_variant(model, content: bytes, out_tflite, out_info, family, config=None, **extra):
    """Every TFLite-producing rule writes model.tflite plus info.json: the size of the Keras model it came
    from (pruned models have fewer non-zeros or fewer MACs) and family-specific settings."""
    from .size import estimate

    total = estimate(model)["total"]
    info = {k: total[k] for k in ("params", "nonzero_params", "macs", "flops")}
    info.update(family=family, **extra)
    _write_bytes(out_tflite, content)
    write_json(out_info, info, config)


def convert_float_step(model_path, out_tflite, out_info, config=None):
    from .convert import to_float
    from .train import load_model

    model = load_model(model_path)
    write_variant(model, to_float(model), out_tflite, out_info, "float", config)


def convert_ptq_int8_step(model_path, train_npz, out_tflite, out_info, samples, config=None):
    from ..npio import load_split
    from .convert import to_int8
    from .train import load_model

    x, _ = load_split(train_npz)
    model = load_model(model_path)
    write_variant(model, to_int8(model, x, samples), out_tflite, out_info, "ptq", config, bits=8)


def evaluate_step(
    model_tflite,
    info_json,
    test_npz,
    index_json,
    out_json,
    out_predictions,
    out_outputs,
    latency_runs,
    float_predictions=None,
    arch=None,
    variant=None,
    log_path=None,
    config=None,
):
    from ..npio import load_split
    from .evaluate import evaluate_tflite

    log = make_log(log_path)
    x, y = load_split(test_npz)
    labels = read_json(index_json)["labels"]
    float_pred = np.load(float_predictions) if float_predictions else None
    content = Path(model_tflite).read_bytes()
    res, pred, outputs = evaluate_tflite(content, x, y, labels, float_pred=float_pred, latency_runs=latency_runs)
    res.update(read_results(info_json))
    res.update(arch=arch, variant=variant, deployable=bool("tflm" in res))
    log(
        f"{arch}/{variant}: accuracy {res['accuracy']:.4f} on {res['n']} test clips, "
        f"{res['tflite_bytes']} bytes" + (f", TFLM bit-exact {res['tflm']['bitexact']}" if "tflm" in res else "")
    )
    np.save(out_predictions, pred)
    np.save(out_outputs, outputs)
    write_json(out_json, res, config)


def evaluate_holdout_step(
    model_tflite, features_npz, index_json, out_json, voices, arch=None, variant=None, log_path=None, config=None
):
    """One variant on the held-out voices (never in training or validation): accuracy, balanced accuracy,
    per-class recall and the unknown-word false-accept rate."""
    from ..npio import load_split
    from .evaluate import evaluate_heldout

    log = make_log(log_path)
    x, y = load_split(features_npz)
    labels = read_json(index_json)["labels"]
    res, _ = evaluate_heldout(Path(model_tflite).read_bytes(), x, y, labels)
    res.update(arch=arch, variant=variant, voices=list(voices))
    recall = ", ".join(f"{k} {v['recall']:.3f}" for k, v in res["per_class"].items() if v["support"])
    fa = res["unknown_false_accept"]
    log(
        f"{arch}/{variant} on held-out voices {list(voices)}: accuracy {res['accuracy']:.4f}, balanced "
        f"{res['balanced_accuracy']:.4f}, unknown false accepts {'n/a' if fa is None else f'{fa:.4f}'}, "
        f"recall {recall} ({res['n']} clips, {res['accuracy_runtime']})"
    )
    write_json(out_json, res, config)
