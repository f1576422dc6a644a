"""The workflow steps of the keyword-spotting pipeline (rules/pipeline.smk): the raw test clips, the streaming
recording, the keyword-spotter firmware, the host's and the device's runs of both, and their summary.

Device and host must agree exactly: every network output and every event on the recording, every output on
the test clips (which must also equal TFLM's outputs on the workflow's features). A disagreement fails the job
after its results are written, naming the transcript."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..budgets import CLOCK_HZ
from ..data import micro_frontend as mf
from ..data.recording import make_recording, read_pcm16
from ..npio import load_split
from ..provenance import read_json, read_results, write_json
from ..runlog import make_log
from .backends import PSRAM_BASE, PSRAM_SIZE, connect, make_backend
from .build import build_firmware, elf_sizes
from .measure import CALIBRATION_LOOPS
from .pipeline import (
    check_pcm,
    event_time_s,
    feature_extractor_size,
    feature_tables,
    frontend_config,
    host_stream,
    image_split,
    pipe_info,
    run_clips,
    run_stream,
    stage_costs,
)
from .protocol import DeviceError
from .recognizer import score_detections, settings

STAGES = ("pre", "net", "post")
STAGE_NAMES = {"pre": "pre-processing (features)", "net": "network", "post": "post-processing (recognizer)"}


def test_pcm_step(index_json, test_npz, out_npz, features, seed, clips, log_path=None):
    """The first `clips` test clips as the 16-bit PCM the features rule computed their features from (the
    same audio, regenerated from the index and the seed), checked against testing.npz value for value."""
    from ..data.features import load_audio

    log = make_log(log_path)
    index = read_json(index_json)
    audio, y = load_audio(index, "testing", {}, features["sample_rate"], features["clip_ms"], seed)
    n = min(int(clips), len(audio))
    audio, y = audio[:n], y[:n]
    x, y_want = load_split(test_npz)
    feats = mf.extract(audio, features)
    if not (np.array_equal(feats, x[:n]) and np.array_equal(y, y_want[:n])):
        raise RuntimeError(
            f"the test audio regenerated from {index_json} does not give the features in {test_npz}: the features "
            "rule and this one load the test split differently; rerun both"
        )
    pcm = mf.pcm16(audio)
    tmp = Path(str(out_npz) + ".tmp.npz")
    np.savez_compressed(tmp, pcm=pcm, y=y, labels=np.asarray(index["labels"]))
    tmp.replace(out_npz)
    log(f"{n} test clips as 16-bit PCM {pcm.shape}; their C-frontend features equal {test_npz}'s")


def recording_step(index_json, out_wav, out_json, seconds, features, seed, background_volume, config=None):
    index = read_json(index_json)
    fe = frontend_config(features)
    desc = make_recording(
        index, out_wav, seconds, fe.sample_rate, fe.clip_ms, fe.stride, seed, background_volume=background_volume
    )
    write_json(out_json, desc, config)


def pipeline_build_step(model_c, out_elf, features):
    build_dir = Path(out_elf).parent
    tables = feature_tables(features, build_dir / "fetables")
    elf = build_firmware(Path(model_c).parent, build_dir, features=tables)
    if Path(elf).resolve() != Path(out_elf).resolve():
        raise RuntimeError(f"firmware build wrote {elf}, expected {out_elf}")


def _model_io(codegen_json) -> dict:
    gen = read_results(codegen_json)
    keys = ("input_scale", "input_zero_point", "output_scale", "output_zero_point")
    return {k: gen[k] for k in keys}


def _events(raw, fe_cfg, labels) -> list[dict]:
    return [
        {"inference": i, "columns": c, "class": k, "label": labels[k], "score": score}
        | {"time_s": event_time_s(c, fe_cfg)}
        for i, c, k, score in raw
    ]


def _host_timing(pcm, fe_cfg, content, windows, outputs, s, io, runs) -> dict:
    """Wall time of each stage on this host, per stride and per inference: the C frontend (ctypes) with the
    quantisation, TFLite's default kernels on one thread, and the recognizer's Python reference."""
    from ..tfutil import tf
    from .recognizer import recognize

    fe = mf.frontend(fe_cfg)
    strides = len(pcm) // fe_cfg.stride
    pre = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fe.quantize(fe.stream(pcm), io["input_scale"], io["input_zero_point"])
        pre.append((time.perf_counter() - t0) / strides)
    interp = tf.lite.Interpreter(model_content=content, num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    shaped = windows.reshape((len(windows), *inp["shape"][1:])).astype(inp["dtype"])
    net = []
    for _ in range(runs):
        for w in shaped:
            interp.set_tensor(inp["index"], w[None])
            t0 = time.perf_counter()
            interp.invoke()
            net.append(time.perf_counter() - t0)
    post = []
    for _ in range(runs):
        t0 = time.perf_counter()
        recognize(outputs, s)
        post.append((time.perf_counter() - t0) / max(len(outputs), 1))
    per = {"pre": float(np.median(pre)), "net": float(np.median(net)), "post": float(np.median(post))}
    per_s = {
        "pre": per["pre"] * fe_cfg.sample_rate / fe_cfg.stride,
        "net": per["net"] * fe_cfg.sample_rate / fe_cfg.stride / s.interval,
        "post": per["post"] * fe_cfg.sample_rate / fe_cfg.stride / s.interval,
    }
    return {
        "pre_us_per_stride": per["pre"] * 1e6,
        "net_us_per_inference": per["net"] * 1e6,
        "post_us_per_inference": per["post"] * 1e6,
        "ms_per_second": {k: v * 1e3 for k, v in per_s.items()},
        "total_ms_per_second": sum(per_s.values()) * 1e3,
        "runs": runs,
        "note": (
            "host CPU wall time, median: the C frontend through ctypes (plus the int8 quantisation), TFLite's "
            "default kernels on 1 thread (invoke only), the recognizer's Python reference; varies with the machine"
        ),
    }


def pipeline_host_step(
    model_tflite,
    codegen_json,
    index_json,
    recording_wav,
    recording_json,
    out_json,
    recognizer,
    features,
    tolerance_ms,
    timing_runs=3,
    arch=None,
    variant=None,
    log_path=None,
    config=None,
):
    """The recording through the host's pipeline (C frontend, TFLM, recognizer reference): outputs, events,
    detection figures, and the host's time per stage."""
    from ..codegen import tflm_outputs

    log = make_log(log_path)
    fe_cfg = frontend_config(features)
    io = _model_io(codegen_json)
    labels = read_json(index_json)["labels"]
    rec = read_results(recording_json)
    s = settings(recognizer, features, labels, io["output_scale"], io["output_zero_point"])
    pcm = check_pcm(read_pcm16(recording_wav, rec["sample_rate"]), rec["sample_rate"], fe_cfg, stream=True)
    host = host_stream(
        pcm, fe_cfg, io["input_scale"], io["input_zero_point"], lambda w: tflm_outputs(model_tflite, w), s
    )
    events = _events(host["events"], fe_cfg, labels)
    detection = score_detections(events, rec["placements"], tolerance_ms / 1000)
    log(
        f"{arch}/{variant}: {len(host['ends'])} inferences, {len(events)} events, "
        f"{detection['hits']} hits of {detection['keywords']} keywords, {detection['false_alarms']} false alarms"
    )
    content = Path(model_tflite).read_bytes()
    timing = _host_timing(pcm, fe_cfg, content, host["windows"], host["outputs"], s, io, timing_runs)
    write_json(
        out_json,
        {
            "arch": arch,
            "variant": variant,
            "runtime": "C frontend (tinymighty.data.micro_frontend) + TFLM Python interpreter + recognizer reference",
            "settings": s.as_dict(),
            "recording": {k: rec[k] for k in ("samples", "seconds", "sample_rate", "keywords", "unknown_words")},
            "columns": host["columns"],
            "inferences": len(host["ends"]),
            "ends": host["ends"],
            "outputs": [bytes(o.astype(np.int8).tobytes()).hex() for o in host["outputs"]],
            "events": events,
            "detection": detection,
            "timing": timing,
        },
        config,
    )


def _calibrate(client, insns_per_tick) -> dict:
    cal = client.calibrate(CALIBRATION_LOOPS)
    measured = cal["loop_insns"] / cal["ticks"]
    if insns_per_tick and abs(measured / insns_per_tick - 1) > 0.001:
        raise DeviceError(
            f"tick calibration: {measured:.3f} instructions per tick, expected {insns_per_tick:.3f}; is QEMU running "
            "with -icount shift=0?",
            client.transcript.path,
        )
    return {"loop_instructions": cal["loop_insns"], "ticks": cal["ticks"], "instructions_per_tick": measured}


def pipeline_device_step(
    elf,
    codegen_json,
    index_json,
    recording_wav,
    recording_json,
    host_json,
    test_pcm,
    host_outputs,
    out_json,
    stream_log,
    clips_log,
    recognizer,
    features,
    tolerance_ms,
    accuracy_inputs,
    arch=None,
    variant=None,
    config=None,
):
    """The keyword spotter on the device: the recording streamed (events, outputs, instructions per stage) and
    the test clips one by one from raw audio; both compared with the host, output by output and event by event.
    Results are written only after both transcripts are complete."""
    fe_cfg = frontend_config(features)
    io = _model_io(codegen_json)
    labels = read_json(index_json)["labels"]
    rec = read_results(recording_json)
    host = read_results(host_json)
    s = settings(recognizer, features, labels, io["output_scale"], io["output_zero_point"])
    rate = rec["sample_rate"]
    pcm = check_pcm(read_pcm16(recording_wav, rate), rate, fe_cfg, stream=True)
    sizes = elf_sizes(elf)
    split = image_split(Path(elf).parent / "firmware.map")

    backend = make_backend({"kind": "qemu"}, elf, preload=pcm.tobytes())
    with connect(backend, stream_log, timeout=30.0) as client:
        info = client.identify()
        pipe = pipe_info(client, features)
        insns_per_tick = backend.instructions_per_tick(info["tick_hz"])
        calibration = _calibrate(client, insns_per_tick)
        stream = run_stream(client, PSRAM_BASE, len(pcm), rate, s)
        memory = client.memory()
        client.exit(0)

    with np.load(test_pcm) as d:
        clips, y = d["pcm"], d["y"]
    n = min(int(accuracy_inputs), len(clips))
    clips, y = check_pcm(clips[:n], rate, fe_cfg, stream=False), y[:n]
    per_session = PSRAM_SIZE // clips[0].nbytes
    parts = []
    Path(clips_log).unlink(missing_ok=True)
    for start in range(0, n, per_session):
        part = clips[start : start + per_session]
        log = clips_log if start == 0 else f"{clips_log}.{start // per_session}"
        with connect(make_backend({"kind": "qemu"}, elf, preload=part.tobytes()), log, timeout=30.0) as client:
            parts.append(run_clips(client, PSRAM_BASE, len(part), part.shape[1], rate))
            client.exit(0)
    dev_pred = np.concatenate([p["predictions"] for p in parts])
    dev_out = np.concatenate([p["outputs"] for p in parts])
    clip_ticks = {k: sum(p["ticks"][k] for p in parts) for k in ("pre_ticks", "net_ticks")}

    tflm = np.load(host_outputs)[:n].reshape(n, -1)
    clips_mismatched = int(np.sum(np.any(dev_out != tflm, axis=1)))
    predictions_differing = int(np.sum(dev_pred != tflm.argmax(axis=1)))
    host_out = np.frombuffer(bytes.fromhex("".join(host["outputs"])), np.int8).reshape(len(host["outputs"]), -1)
    stream_outputs_equal = bool(stream["ends"] == host["ends"] and np.array_equal(stream["outputs"], host_out))
    events = _events(stream["events"], fe_cfg, labels)
    host_events = [(e["inference"], e["columns"], e["class"], e["score"]) for e in host["events"]]
    events_equal = stream["events"] == host_events
    costs = stage_costs(stream["ticks"], stream["strides"], stream["inferences"], insns_per_tick, fe_cfg, s.interval)
    fe_size = feature_extractor_size(split, pipe)
    res = {
        "arch": arch,
        "variant": variant,
        "settings": s.as_dict(),
        "identify": info,
        "pipe": pipe,
        "calibration": calibration,
        "stream": {
            "samples": stream["samples"],
            "seconds": stream["samples"] / rate,
            "strides": stream["strides"],
            "columns": stream["columns"],
            "inferences": stream["inferences"],
            "ticks": stream["ticks"],
            "events": events,
            "outputs_equal_host": stream_outputs_equal,
            "events_equal_host": events_equal,
            "detection": score_detections(events, rec["placements"], tolerance_ms / 1000),
        },
        "costs": costs,
        "mcu": {
            "clock_hz": CLOCK_HZ,
            "ms_per_second": {k: v / CLOCK_HZ * 1e3 for k, v in costs["per_second"].items()},
            "core_share": costs["total_per_second"] / CLOCK_HZ,
            "unit": "emulated instructions (QEMU -icount), not Cortex-M4 cycles: ms assume 1 instruction per cycle",
        },
        "clips": {
            "n": n,
            "accuracy": float(np.mean(dev_pred == y)),
            "host_accuracy": float(np.mean(tflm.argmax(axis=1) == y)),
            "outputs_mismatched": clips_mismatched,
            "predictions_differing": predictions_differing,
            "matches_host": clips_mismatched == 0 and predictions_differing == 0,
            "pre_per_clip": clip_ticks["pre_ticks"] * insns_per_tick / n,
            "net_per_clip": clip_ticks["net_ticks"] * insns_per_tick / n,
        },
        "feature_extractor": fe_size,
        "image": {k: sizes[k] for k in ("flash_image", "ram_reserved", "flash_model", "stack_size", "stack_bound")},
        "memory": memory,
        "split": split["groups"],
        "variables": split["variables"],
    }
    write_json(out_json, res, config)
    problems = []
    if not stream_outputs_equal:
        problems.append("its network outputs on the recording differ from the host's")
    if not events_equal:
        problems.append(f"its events ({stream['events']}) differ from the host's ({host_events})")
    if not res["clips"]["matches_host"]:
        problems.append(f"{clips_mismatched} of {n} test clips' outputs differ from TFLM's on the host's features")
    if memory["stack_size"] and memory["stack_used"] >= memory["stack_size"]:
        problems.append(f"it used all of its {memory['stack_size']}-byte stack")
    if problems:
        raise DeviceError(
            f"{arch}/{variant} keyword spotter: " + "; ".join(problems) + f"; results in {out_json}", Path(stream_log)
        )


def _row(host: dict, dev: dict) -> dict:
    c = dev["costs"]
    return {
        "arch": dev["arch"],
        "variant": dev["variant"],
        "label": f"{dev['arch']}/{dev['variant']}",
        "instructions_per_second": c["per_second"],
        "instructions_total_per_second": c["total_per_second"],
        "inferences_per_second": c["inferences_per_second"],
        "pre_per_stride": c["pre_per_stride"],
        "pre_max": c["pre_max"],
        "net_per_inference": c["net_per_inference"],
        "post_per_inference": c["post_per_inference"],
        "mcu_ms_per_second": dev["mcu"]["ms_per_second"],
        "core_share": dev["mcu"]["core_share"],
        "host_ms_per_second": host["timing"]["ms_per_second"],
        "host_total_ms_per_second": host["timing"]["total_ms_per_second"],
        "host": {k: host["timing"][k] for k in ("pre_us_per_stride", "net_us_per_inference", "post_us_per_inference")},
        "detection_host": {k: v for k, v in host["detection"].items() if k != "events"},
        "detection_device": {k: v for k, v in dev["stream"]["detection"].items() if k != "events"},
        "events_equal": dev["stream"]["events_equal_host"],
        "outputs_equal": dev["stream"]["outputs_equal_host"],
        "clips": dev["clips"],
        "feature_extractor": dev["feature_extractor"],
        "flash_image": dev["image"]["flash_image"],
        "ram_reserved": dev["image"]["ram_reserved"],
        "settings": dev["settings"],
    }


def pipeline_summary_step(host_jsons, device_jsons, recording_json, out_json, recognizer, features, config=None):
    """One record of every pipeline variant, for the report and the benchmark."""
    rec = read_results(recording_json)
    rows = [_row(read_results(h), read_results(d)) for h, d in zip(host_jsons, device_jsons, strict=True)]
    write_json(
        out_json,
        {
            "recording": {k: v for k, v in rec.items() if k != "placements"},
            "placements": rec["placements"],
            "recognizer": recognizer,
            "features": features,
            "clock_hz": CLOCK_HZ,
            "stages": STAGE_NAMES,
            "rows": rows,
        },
        config,
    )
