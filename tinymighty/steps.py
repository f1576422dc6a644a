"""One function per workflow step: paths and parameters in, files out. Snakemake scripts only call these."""
import json
from pathlib import Path

import numpy as np

from .provenance import read_json, write_json
from .runlog import make_log


def dataset_step(out_dir, source, path, url, sha256, synthetic, splits, seed, log_path=None, config=None):
    from . import dataset

    log = make_log(log_path)
    out_dir = Path(out_dir)
    if source == "synthetic":
        stats = dataset.synthesize(out_dir, seed=seed, progress=log, **synthetic, **splits)
    else:
        stats = {"path": str(dataset.fetch_speech_commands(out_dir, path=path, url=url, sha256=sha256,
                                                           progress=log))}
    log(f"dataset ready in {out_dir}: {stats}")


def prepare_step(data_dir, out_json, wanted_words, percentages, seed, log_path=None, config=None):
    from .prepare import prepare_index

    log = make_log(log_path)
    index = prepare_index(data_dir, wanted_words, seed=seed, **percentages)
    for split, counts in index["counts"].items():
        log(f"{split}: {sum(counts.values())} examples {counts}")
    write_json(out_json, index, config)


def features_step(index_json, out_npz, features, augment, seed, split, log_path=None):
    from .features import compute_split

    log = make_log(log_path)
    index = read_json(index_json)
    x, y = compute_split(index, split, features, augment, seed, progress=log)
    log(f"{split}: features {x.shape}, value range {x.min():.2f}..{x.max():.2f}")
    tmp = Path(str(out_npz) + ".tmp.npz")
    np.savez_compressed(tmp, x=x, y=y, labels=np.asarray(index["labels"]))
    tmp.replace(out_npz)


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
    from .convert import to_int8
    from .train import load_model, load_split

    x, _ = load_split(train_npz)
    model = load_model(model_path)
    write_variant(model, to_int8(model, x, samples), out_tflite, out_info, "ptq", config, bits=8)


def evaluate_step(model_tflite, info_json, test_npz, index_json, out_json, out_predictions, latency_runs,
                  float_predictions=None, arch=None, variant=None, log_path=None, config=None):
    from .evaluate import evaluate_tflite
    from .train import load_split

    log = make_log(log_path)
    x, y = load_split(test_npz)
    labels = read_json(index_json)["labels"]
    float_pred = np.load(float_predictions) if float_predictions else None
    content = Path(model_tflite).read_bytes()
    res, pred, _ = evaluate_tflite(content, x, y, labels, float_pred=float_pred, latency_runs=latency_runs)
    info = read_json(info_json)
    info.pop("provenance", None)
    res.update(info)
    res.update(arch=arch, variant=variant, deployable=bool("tflm" in res))
    log(f"{arch}/{variant}: accuracy {res['accuracy']:.4f} on {res['n']} test clips, "
        f"{res['tflite_bytes']} bytes" + (f", TFLM bit-exact {res['tflm']['bitexact']}" if "tflm" in res else ""))
    np.save(out_predictions, pred)
    write_json(out_json, res, config)
