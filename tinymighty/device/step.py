"""The workflow steps of the device stage: build the firmware, measure it on the device, and the per-variant
metrics record."""

import tempfile
from pathlib import Path

import numpy as np

from ..codegen import generate
from ..npio import load_split, quantize_input
from ..provenance import read_results, write_json
from .build import build_firmware
from .measure import measure, over_inputs
from .protocol import DeviceError


def firmware_build_step(model_c, out_elf):
    elf = build_firmware(Path(model_c).parent, Path(out_elf).parent)
    if Path(elf).resolve() != Path(out_elf).resolve():
        raise RuntimeError(f"firmware build wrote {elf}, expected {out_elf}")


def _int_or_none(v):
    return None if v is None else int(round(v))


def device_step(
    elf,
    model_tflite,
    test_npz,
    host_outputs,
    codegen_json,
    out_json,
    log_path,
    backend,
    port,
    baudrate,
    accuracy_inputs,
    bench_runs,
    timing_inputs=1,
    arch=None,
    variant=None,
    config=None,
    sketch_link=None,
):
    """Measure one firmware image on the device and check it agrees with the host, output by output.

    Results and transcripts stay a pair: Snakemake removes device.json and its transcript (the job's log)
    before the job starts, the transcript is written as the exchange happens, and device.json is written
    atomically only after the last transcript is complete. A killed job therefore leaves no result (the
    next run measures again: the Snakefile's `all` asks for every device.json) and its own transcript.

    Instructions are timed on the first `timing_inputs` test clips, `bench_runs` runs each: the headline is
    their median, shown with the min and max, and every clip's count is kept (issue 11).

    On a board (backend serial), flash and RAM are the nRF52840 link check's of the variant's sketch
    (sketch_link, its link.json): the core builds what runs. The board must report this variant's model hash,
    and a board counting cycles (the sketch's DWT counter, ID's tick=cycles) gives `cycles` at its clock."""
    Path(f"{log_path}.dense").unlink(missing_ok=True)  # an earlier run's dense-kernel transcript
    x, y = load_split(test_npz)
    n = min(accuracy_inputs, len(x))
    gen = read_results(codegen_json)
    # The generated model's own input quantization: no TensorFlow import needed in this job.
    inp = {"dtype": np.int8, "quantization": (gen["input_scale"], gen["input_zero_point"])}
    xq = quantize_input(x[:n], inp).reshape(n, -1)
    cfg = {"kind": "qemu"} if backend == "qemu" else {"kind": "serial", "url": port, "baudrate": baudrate}
    timed = min(timing_inputs, n)
    sizes = read_results(sketch_link) if sketch_link else None
    m = measure(
        elf,
        cfg,
        xq,
        n_bench=bench_runs,
        log_path=log_path,
        timing_inputs=timed,
        expected_model=gen["model_hash"],
        sizes=sizes,
    )
    host = np.load(host_outputs)[:n].reshape(n, -1)  # TFLM's outputs: the runtime we must equal
    host_pred = host.argmax(axis=1)
    mismatched = int(np.sum(np.any(m["outputs"].reshape(n, -1) != host, axis=1)))
    timing = m["timing"]
    res = {
        "arch": arch,
        "variant": variant,
        "backend": backend,
        "inputs": n,
        "accuracy": float(np.mean(m["predictions"] == y[:n])),
        "host_accuracy_same_inputs": float(np.mean(host_pred == y[:n])),
        "matches_host": bool(np.array_equal(m["predictions"], host_pred)) and mismatched == 0,
        "outputs_mismatched": mismatched,
        # What a board pays leads: the flashed binary and the RAM the image reserves (issue 11).
        "flash": dict(m["flash"], image=m["elf"].get("flash_image")),
        "ram": dict(
            m["ram"],
            reserved=m["elf"].get("ram_reserved"),
            used=m["ram"]["static"] + m["ram"]["stack_high_water"],
            stack_bound=m["elf"].get("stack_bound"),
            stack_peak=m["ram"]["stack_high_water"],
            total=m["ram"]["static"] + m["ram"]["stack_high_water"],
        ),
        "instructions": _instructions(timing, Path(test_npz).name),
        "timing": timing,
        "calibration": m["calibration"],
        "cycles": _cycles(m["identify"], timing),
        "identify": m["identify"],
        "codegen": gen,
    }
    # The dense twin is another image: QEMU can run it next to this one, a board would need it flashed.
    if backend == "qemu" and any(layer["encoding"] == "sparse" for layer in res["codegen"]["layers"]):
        res["dense_kernels"] = _dense_baseline(
            model_tflite, cfg, xq[:timed], m["outputs"][:timed], bench_runs, log_path
        )
    write_json(out_json, res, config)
    bound = res["ram"]["stack_bound"]
    if bound is not None and res["ram"]["stack_high_water"] > bound:
        raise RuntimeError(
            f"{arch}/{variant}: the painted stack high-water mark ({res['ram']['stack_high_water']} B) is above "
            f"the computed bound ({bound} B): the static stack analysis missed a path; results in {out_json}"
        )
    if not res["matches_host"]:
        raise DeviceError(
            f"{arch}/{variant}: the device disagrees with TFLM on {mismatched} of {n} inputs (results in "
            f"{out_json}, which Snakemake removes as the job failed): the generated C or a kernel is wrong; "
            "compare the outputs in the transcript with the variant's outputs.npy",
            Path(log_path),
        )


def _instructions(timing, test_split):
    """device.json's instruction figures: median and range over the timed test clips, and each clip's count."""
    per_input = timing.get("instructions_per_input")
    return {k: _int_or_none(timing.get(f"instructions_{k}")) for k in ("median", "min", "max")} | {
        "runs": timing["n"],
        "inputs": timing["inputs"],
        "per_input": None if per_input is None else [_int_or_none(v) for v in per_input],
        # Provenance of per_input: the same clips for every variant, so their counts compare clip by clip.
        "clips": {"split": test_split, "indices": list(range(timing["inputs"]))},
        "unit": timing["unit"],
    }


def _cycles(identify, timing):
    """Real cycles per inference and their milliseconds at the board's clock, when the board counts cycles:
    each timed clip's median over its runs, then their median and range, as for instructions."""
    if identify["tick"] != "cycles" or timing.get("instructions_median") is not None:
        return None
    hz = identify["tick_hz"]
    cyc = over_inputs([np.median(t) for t in timing["ticks"]])
    return {
        **{k: _int_or_none(v) for k, v in cyc.items()},
        "runs": timing["n"],
        "inputs": timing["inputs"],
        "clock_hz": hz,
        "ms_median": 1000.0 * cyc["median"] / hz,
        "board": identify["board"],
    }


def _dense_baseline(model_tflite, backend_cfg, xq, expected, bench_runs, log_path):
    """The same model with every layer dense, timed on the same inputs: what the sparse kernels are compared
    against."""
    with tempfile.TemporaryDirectory() as tmp:
        info = generate(model_tflite, Path(tmp) / "model", sparse_threshold=None)
        elf = build_firmware(Path(tmp) / "model", Path(tmp) / "build")
        m = measure(elf, backend_cfg, xq, n_bench=bench_runs, log_path=str(log_path) + ".dense", timing_inputs=len(xq))
    if not np.array_equal(m["outputs"], expected):
        raise RuntimeError(f"{model_tflite}: dense and sparse kernels disagree; transcripts in {log_path}[.dense]")
    return {
        **{f"instructions_{k}": _int_or_none(m["timing"].get(f"instructions_{k}")) for k in ("median", "min", "max")},
        "flash_model": m["flash"].get("model"),
        "weight_bytes": info["weight_bytes"],
    }


def metrics_step(host_json, device_json, out_json, config=None, holdout_json=None):
    """The one machine-readable record per variant: host evaluation plus, for deployed variants, the device,
    and for TFLite variants, the held-out voices."""
    metrics = read_results(host_json)
    if device_json:
        metrics["device"] = read_results(device_json)
    if holdout_json:
        metrics["holdout"] = read_results(holdout_json)
    write_json(out_json, metrics, config)
