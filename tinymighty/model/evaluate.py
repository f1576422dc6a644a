"""Evaluate TFLite models on the test split: accuracy, per-class metrics, agreement, latency, TFLM check."""

import gzip
import time

import numpy as np

from ..data.prepare import SILENCE, UNKNOWN
from ..npio import quantize_input
from ..tfutil import ref_interpreter, tf


def io_details(interp):
    return interp.get_input_details()[0], interp.get_output_details()[0]


def run_tflite(content: bytes, x: np.ndarray):
    """Return (raw outputs in the model's dtype, quantized inputs) for every row of x, with reference kernels."""
    interp = ref_interpreter(content)
    inp, out = io_details(interp)
    xq = quantize_input(x, inp)
    outputs = np.empty((len(x),) + tuple(out["shape"][1:]), dtype=out["dtype"])
    for i in range(len(x)):
        interp.set_tensor(inp["index"], xq[i : i + 1])
        interp.invoke()
        outputs[i] = interp.get_tensor(out["index"])[0]
    return outputs, xq


def tflm_outputs(content: bytes, xq: np.ndarray) -> np.ndarray:
    """Outputs of TFLM's own Python interpreter (tflite-micro) on already-quantized inputs."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(content)
    outs = []
    for row in xq:
        interp.set_input(row[None, ...], 0)
        interp.invoke()
        outs.append(interp.get_output(0)[0].copy())
    return np.stack(outs)


def classification(y_true, y_pred, labels):
    n = len(labels)
    cm = np.zeros((n, n), dtype=int)
    for t, p in zip(y_true, y_pred, strict=False):
        cm[t, p] += 1
    per_class = {}
    for i, lab in enumerate(labels):
        tp = cm[i, i]
        per_class[lab] = {
            "precision": float(tp / cm[:, i].sum()) if cm[:, i].sum() else 0.0,
            "recall": float(tp / cm[i].sum()) if cm[i].sum() else 0.0,
            "support": int(cm[i].sum()),
        }
    return {
        "accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))),
        "n": int(len(y_true)),
        "per_class": per_class,
        "confusion": cm.tolist(),
        **rejection(cm, labels),
    }


def rejection(cm, labels):
    """Figures that a class mix cannot flatter, from a confusion matrix (rows: truth, columns: prediction).

    balanced_accuracy: the mean recall over the classes present. unknown_false_accept: the share of unknown
    words taken for a keyword (a label other than silence and unknown), the error a user hears as a false
    wake-up; None without unknown words. class_mix: the share of each class in what was measured.
    """
    cm = np.asarray(cm)
    support = cm.sum(axis=1)
    present = support > 0
    recall = np.diag(cm)[present] / support[present]
    out = {
        "balanced_accuracy": float(recall.mean()) if present.any() else 0.0,
        "unknown_false_accept": None,
        "class_mix": {lab: float(support[i] / max(support.sum(), 1)) for i, lab in enumerate(labels)},
    }
    if UNKNOWN in labels:
        u = labels.index(UNKNOWN)
        keywords = [i for i, lab in enumerate(labels) if lab not in (SILENCE, UNKNOWN)]
        if support[u]:
            out["unknown_false_accept"] = float(cm[u, keywords].sum() / support[u])
    return out


def host_latency(content: bytes, x_row: np.ndarray, runs: int, reference: bool = False):
    """Wall time of one invoke on one thread, in milliseconds.

    Default: TFLite's optimised kernels, what a host user would run. reference=True: the plain scalar
    reference kernels, whose cost follows the MACs as on the MCU (the optimised SIMD tiles cover TinyConv's
    8 output channels whether or not some are removed).
    """
    if reference:
        interp = ref_interpreter(content)
    else:
        interp = tf.lite.Interpreter(model_content=content, num_threads=1)
        interp.allocate_tensors()
    inp, _ = io_details(interp)
    interp.set_tensor(inp["index"], quantize_input(np.asarray(x_row)[None], inp))
    for _ in range(10):
        interp.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - t0) * 1000.0)
    t = np.asarray(times)
    kernels = "reference" if reference else "default"
    return {
        "median_ms": float(np.median(t)),
        "p10_ms": float(np.percentile(t, 10)),
        "p90_ms": float(np.percentile(t, 90)),
        "runs": runs,
        "note": f"host CPU, TFLite {kernels} kernels, 1 thread; varies with the machine, not reproducible",
    }


def evaluate_tflite(content: bytes, x, y, labels, float_pred=None, latency_runs=200, tflm_check=True):
    """Metrics of one TFLite model on (x, y); returns (metrics, predictions, reference outputs).

    For int8 models the accuracy, predictions and reference outputs are TFLM's: that is the runtime the
    firmware must equal bit for bit. tf.lite's reference kernels can differ from it by a few LSB (int8
    softmax, requantisation rounding); they are kept as a cross-check under res["tflm"].
    """
    outputs, xq = run_tflite(content, x)
    pred = outputs.argmax(axis=1)
    check = None
    if tflm_check and outputs.dtype == np.int8:
        micro = tflm_outputs(content, xq)
        differing = np.any(micro != outputs, axis=1)
        micro_pred = micro.argmax(axis=1)
        check = {
            "inputs": int(len(xq)),
            "bitexact": bool(not differing.any()),
            "rows_differing": int(differing.sum()),
            "predictions_differing": int(np.sum(micro_pred != pred)),
            "max_abs_diff": int(np.abs(micro.astype(int) - outputs.astype(int)).max()),
            "reference_accuracy": float(np.mean(np.asarray(y) == pred)),
            "compared": "TFLM Python interpreter vs tf.lite BUILTIN_REF kernels",
        }
        outputs, pred = micro, micro_pred
    res = classification(y, pred, labels)
    res["accuracy_runtime"] = "TFLM Python interpreter" if check else "tf.lite reference kernels"
    res["tflite_bytes"] = len(content)
    res["gzip_bytes"] = len(gzip.compress(content, compresslevel=9, mtime=0))
    res["host_latency"] = host_latency(content, x[0], latency_runs)
    if float_pred is not None:
        res["agreement_with_float"] = float(np.mean(pred == float_pred))
    if check:
        res["tflm"] = check
    return res, pred, outputs


def evaluate_heldout(content: bytes, x, y, labels):
    """Classification of one TFLite model on another set (the held-out voices); returns (metrics, predictions).

    Int8 models are scored on TFLM's outputs, the runtime the device equals; float models on tf.lite's
    reference kernels, as on the test split.
    """
    outputs, xq = run_tflite(content, x)
    runtime = "tf.lite reference kernels"
    if outputs.dtype == np.int8:
        outputs, runtime = tflm_outputs(content, xq), "TFLM Python interpreter"
    pred = outputs.argmax(axis=1)
    res = classification(y, pred, labels)
    res["accuracy_runtime"] = runtime
    return res, pred
