"""One function per workflow step: paths and parameters in, files out. Snakemake scripts only call these."""
from pathlib import Path

import numpy as np

from .provenance import read_json, read_results, write_json
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


def evaluate_step(model_tflite, info_json, test_npz, index_json, out_json, out_predictions, out_outputs, latency_runs,
                  float_predictions=None, arch=None, variant=None, log_path=None, config=None):
    from .evaluate import evaluate_tflite
    from .train import load_split

    log = make_log(log_path)
    x, y = load_split(test_npz)
    labels = read_json(index_json)["labels"]
    float_pred = np.load(float_predictions) if float_predictions else None
    content = Path(model_tflite).read_bytes()
    res, pred, outputs = evaluate_tflite(content, x, y, labels, float_pred=float_pred, latency_runs=latency_runs)
    res.update(read_results(info_json))
    res.update(arch=arch, variant=variant, deployable=bool("tflm" in res))
    log(f"{arch}/{variant}: accuracy {res['accuracy']:.4f} on {res['n']} test clips, "
        f"{res['tflite_bytes']} bytes" + (f", TFLM bit-exact {res['tflm']['bitexact']}" if "tflm" in res else ""))
    np.save(out_predictions, pred)
    np.save(out_outputs, outputs)
    write_json(out_json, res, config)


def codegen_step(model_tflite, out_c, out_info, sparse_threshold, config=None):
    from . import codegen

    info = codegen.generate(model_tflite, Path(out_c).parent, sparse_threshold=sparse_threshold)
    write_json(out_info, info, config)


def firmware_build_step(model_c, out_elf):
    from .device import build_firmware

    elf = build_firmware(Path(model_c).parent, Path(out_elf).parent)
    if Path(elf).resolve() != Path(out_elf).resolve():
        raise RuntimeError(f"firmware build wrote {elf}, expected {out_elf}")


def _int_or_none(v):
    return None if v is None else int(round(v))


def device_step(elf, model_tflite, test_npz, host_outputs, codegen_json, out_json, log_path, backend, port,
                baudrate, accuracy_inputs, bench_runs, arch=None, variant=None, config=None):
    """Measure one firmware image on the device and check it agrees with the host, output by output."""
    from . import device
    from .npio import load_split, quantize_input

    x, y = load_split(test_npz)
    n = min(accuracy_inputs, len(x))
    gen = read_results(codegen_json)
    # The generated model's own input quantization: no TensorFlow import needed in this job.
    inp = {"dtype": np.int8, "quantization": (gen["input_scale"], gen["input_zero_point"])}
    xq = quantize_input(x[:n], inp).reshape(n, -1)
    cfg = {"kind": "qemu"} if backend == "qemu" else {"kind": "serial", "url": port, "baudrate": baudrate}
    m = device.measure(elf, cfg, xq, n_bench=bench_runs, log_path=log_path)
    host = np.load(host_outputs)[:n].reshape(n, -1)  # TFLM's outputs: the runtime we must equal
    host_pred = host.argmax(axis=1)
    mismatched = int(np.sum(np.any(m["outputs"].reshape(n, -1) != host, axis=1)))
    timing = m["timing"]
    res = {
        "arch": arch, "variant": variant, "backend": backend, "inputs": n,
        "accuracy": float(np.mean(m["predictions"] == y[:n])),
        "host_accuracy_same_inputs": float(np.mean(host_pred == y[:n])),
        "matches_host": bool(np.array_equal(m["predictions"], host_pred)) and mismatched == 0,
        "outputs_mismatched": mismatched,
        "flash": m["flash"],
        "ram": dict(m["ram"], stack_peak=m["ram"]["stack_high_water"],
                    total=m["ram"]["static"] + m["ram"]["stack_high_water"]),
        "instructions": {k: _int_or_none(timing.get(f"instructions_{k}")) for k in ("median", "min", "max")}
        | {"runs": timing["n"], "unit": timing["unit"]},
        "timing": timing, "calibration": m["calibration"], "identify": m["identify"],
        "codegen": gen,
    }
    if any(layer["encoding"] == "sparse" for layer in res["codegen"]["layers"]):
        res["dense_kernels"] = _dense_baseline(model_tflite, cfg, xq[:1], m["outputs"][:1], bench_runs, log_path)
    write_json(out_json, res, config)
    if not res["matches_host"]:
        raise RuntimeError(f"{arch}/{variant}: the device disagrees with TFLM on {mismatched} of {n} "
                           f"inputs; raw transcript in {log_path}, results in {out_json}")


def _dense_baseline(model_tflite, backend_cfg, xq, expected, bench_runs, log_path):
    """The same model with every layer dense: what the sparse kernels are compared against."""
    import tempfile

    from . import codegen, device

    with tempfile.TemporaryDirectory() as tmp:
        info = codegen.generate(model_tflite, Path(tmp) / "model", sparse_threshold=None)
        elf = device.build_firmware(Path(tmp) / "model", Path(tmp) / "build")
        m = device.measure(elf, backend_cfg, xq, n_bench=bench_runs, log_path=str(log_path) + ".dense")
    if not np.array_equal(m["outputs"], expected):
        raise RuntimeError(f"{model_tflite}: dense and sparse kernels disagree; transcripts in {log_path}[.dense]")
    return {"instructions_median": _int_or_none(m["timing"].get("instructions_median")),
            "flash_model": m["flash"].get("model"), "weight_bytes": info["weight_bytes"]}


def metrics_step(host_json, device_json, out_json, config=None):
    """The one machine-readable record per variant: host evaluation plus, for deployed variants, the device."""
    metrics = read_results(host_json)
    if device_json:
        metrics["device"] = read_results(device_json)
    write_json(out_json, metrics, config)
