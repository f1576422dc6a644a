#!/usr/bin/env python3
"""Benchmark the whole keyword spotter on the Cortex-M4 (issue 10): raw audio -> features -> network -> recognizer.

    python scripts/bench_pipeline.py                      # the PTQ int8 TinyConv (see below), QEMU mps2-an386
    python scripts/bench_pipeline.py model.tflite         # another fully int8 model with the 49x40 input
    python scripts/bench_pipeline.py --wav rec.wav        # stream this 16 kHz 16-bit recording (default: see below)
    python scripts/bench_pipeline.py --interval 2 --json out.json

Without a model it takes results/variants/tinyconv/ptq_int8/model.tflite when the workflow has made it, and
otherwise builds a PTQ int8 TinyConv itself (scripts/bench_firmware.py's: meaningless weights, the real model's
shapes and cost). Without --wav it streams results/pipeline/recording.wav when the workflow has made it, else
20 s of noise whose level changes every half second (the frontend's cost barely depends on the audio).

The model is compiled with tinymighty.codegen and built with the feature extractor (firmware/features/, the
default features config) and the recognizer; QEMU streams the recording through it (protocol STREAM, one
inference every --interval strides) and the native build checks the device's outputs. A second build with
-DFE_PROFILE splits a stride's instructions by frontend stage. Printed: the targets table (ours / must / aim,
PASS or MISS), the instructions per stride by stage, the feature extractor's flash and RAM, and the whole
pipeline per second of audio. Instructions are QEMU's -icount count on the emulated Cortex-M4, not cycles; the
share of the core assumes one instruction per cycle at 64 MHz. It reports figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from tinymighty.budgets import CLOCK_HZ  # noqa: E402
from tinymighty.data import micro_frontend as mf  # noqa: E402
from tinymighty.device import PSRAM_BASE, build_firmware, connect, make_backend  # noqa: E402
from tinymighty.device import pipeline as P  # noqa: E402
from tinymighty.device.recognizer import Settings  # noqa: E402

DEFAULT_TFLITE = ROOT / "results" / "variants" / "tinyconv" / "ptq_int8" / "model.tflite"
DEFAULT_WAV = ROOT / "results" / "pipeline" / "recording.wav"

# Issue 10's targets: (key, figure, must, aim, lower is better)
TARGETS = (
    ("pre_per_stride", "instructions per stride (one 40-channel column from 20 ms)", 30_000, 15_000),
    ("fe_ram", "feature-extractor RAM (state + buffers + stack, B)", 4_096, 2_560),
    ("fe_flash", "feature-extractor flash (code + tables, B)", 10_240, 6_144),
    ("core_share", "whole pipeline, share of a 64 MHz core", 0.25, 0.15),
)
STAGES = (
    ("fe_window", "window"),
    ("fe_fft", "FFT"),
    ("fe_filterbank", "filterbank"),
    ("fe_noise_pcan", "noise reduction + PCAN"),
    ("fe_log", "log"),
    ("fe_quantize", "int8 quantisation"),
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tflite", nargs="?", type=Path, help="fully int8 .tflite (default: the PTQ int8 TinyConv)")
    p.add_argument("--wav", type=Path, help="16 kHz mono 16-bit recording to stream")
    p.add_argument("--interval", type=int, default=4, help="feature strides per inference (default 4)")
    p.add_argument("--work-dir", type=Path, help="keep generated code, builds and transcripts here")
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args(argv)


def model_path(args, work: Path) -> Path:
    if args.tflite:
        return args.tflite
    if DEFAULT_TFLITE.is_file():
        return DEFAULT_TFLITE
    import bench_firmware

    print("no workflow model: building a PTQ int8 TinyConv (2 epochs on random data) ...", file=sys.stderr)
    return bench_firmware.build_default_tinyconv(work / "tinyconv_ptq_int8.tflite")


def recording(args, fe: mf.FrontendConfig) -> np.ndarray:
    from tinymighty.data.recording import read_pcm16

    wav = args.wav or (DEFAULT_WAV if DEFAULT_WAV.is_file() else None)
    if wav is not None:
        x = read_pcm16(wav, fe.sample_rate)
        return x[: len(x) // fe.stride * fe.stride]
    rng = np.random.default_rng(10)
    n = 20 * fe.sample_rate
    level = np.repeat(10 ** rng.uniform(0.5, 4, n // 8000 + 1), 8000)[:n]
    return np.clip(np.round(rng.normal(0, 1, n) * level), -32768, 32767).astype(np.int16)


def stream(elf, pcm, s, log) -> tuple[dict, dict, float]:
    backend = make_backend({"kind": "qemu"}, elf, preload=pcm.tobytes())
    with connect(backend, log, timeout=30.0) as client:
        info = client.identify()
        pipe = P.pipe_info(client)
        per_tick = backend.instructions_per_tick(info["tick_hz"])
        cal = client.calibrate(1_000_000)
        if abs(cal["loop_insns"] / cal["ticks"] / per_tick - 1) > 0.001:
            sys.exit(f"tick calibration failed ({cal}); is QEMU running with -icount shift=0?")
        r = P.run_stream(client, PSRAM_BASE, len(pcm), mf.FrontendConfig().sample_rate, s)
        client.exit(0)
    return r, pipe, per_tick


def main(argv=None) -> None:
    args = parse_args(argv)
    from tinymighty.codegen import generate

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        fe = mf.FrontendConfig()
        info = generate(model_path(args, work), work / "model")
        tables = mf.DEFAULT_TABLES_DIR
        elf = build_firmware(work / "model", work / "mps2", features=tables)
        prof_elf = build_firmware(work / "model", work / "mps2_profile", features=tables, extra_cflags="-DFE_PROFILE")
        exe = build_firmware(work / "model", work / "host", features=tables, board="host")
        pcm = recording(args, fe)
        classes = int(np.prod(info["output_shape"]))
        s = Settings(  # the default config's recognizer: 400 ms, threshold 0.6, 1 s quiet; keywords: all but 2
            interval=args.interval,
            window=5,
            threshold=int(0.6 * 5 / info["output_scale"]),
            suppression=12,
            keywords=((1 << classes) - 1) & ~0b11,
            classes=classes,
            zero_point=info["output_zero_point"],
        )
        r, pipe, per_tick = stream(elf, pcm, s, work / "stream.log")
        prof, _, _ = stream(prof_elf, pcm, s, work / "stream_profile.log")
        with connect(make_backend({"kind": "host"}, exe, preload=pcm.tobytes()), work / "host.log") as client:
            native = P.run_stream(client, PSRAM_BASE, len(pcm), fe.sample_rate, s)
        matches = bool(np.array_equal(native["outputs"], r["outputs"]) and native["events"] == r["events"])
        split = P.image_split(Path(elf).parent / "firmware.map")
        size = P.feature_extractor_size(split, pipe)

    costs = P.stage_costs(r["ticks"], r["strides"], r["inferences"], per_tick, fe, args.interval)
    columns = prof["columns"]
    stages = {k: prof["stage_ticks"][k] * per_tick / columns for k, _ in STAGES}
    frontend = sum(v for k, v in stages.items() if k != "fe_quantize")
    fig = {
        "pre_per_stride": costs["pre_per_stride"],
        "fe_ram": size["ram"],
        "fe_flash": size["flash"],
        "core_share": costs["total_per_second"] / CLOCK_HZ,
        "costs": costs,
        "stages_per_column": stages,
        "feature_extractor": size,
        "network_per_inference": costs["net_per_inference"],
        "recognizer_per_inference": costs["post_per_inference"],
        "device_matches_native_build": matches,
        "audio_seconds": len(pcm) / fe.sample_rate,
        "interval": args.interval,
    }
    print(
        f"\nThe keyword spotter on QEMU mps2-an386: {fig['audio_seconds']:g} s of audio, one inference every "
        f"{args.interval} strides ({args.interval * fe.stride_ms} ms); model {info['model_hash']}"
    )
    print(f"\n{'figure':<60} {'ours':>12} {'must':>10} {'aim':>10}  status")
    for key, name, must, aim in TARGETS:
        v = fig[key]
        fmt = (lambda x: f"{100 * x:.1f}%") if key == "core_share" else (lambda x: f"{x:,.0f}")
        status = "PASS (aim)" if v <= aim else "PASS (must)" if v <= must else "MISS"
        print(f"{name:<60} {fmt(v):>12} {fmt(must):>10} {fmt(aim):>10}  {status}")
    print("\nInstructions per stride by stage (a -DFE_PROFILE build; each stage includes one timer read, ~15):")
    for k, name in STAGES:
        print(f"  {name:<32} {stages[k]:>10,.0f}")
    rest = costs["pre_per_stride"] - sum(stages.values())
    print(f"  {'window upkeep, copies, timer':<32} {rest:>10,.0f}")
    print(
        f"  {'= pre-processing per stride':<32} {costs['pre_per_stride']:>10,.0f}   (the frontend's stages "
        f"{frontend:,.0f}; worst stride {costs['pre_max']:,.0f})"
    )
    print(
        f"\nNetwork per inference {costs['net_per_inference']:,.0f}, recognizer per inference "
        f"{costs['post_per_inference']:,.0f} instructions."
    )
    print(
        "Per second of audio: "
        + ", ".join(f"{k} {v:,.0f}" for k, v in costs["per_second"].items())
        + f" = {costs['total_per_second']:,.0f} instructions = {100 * fig['core_share']:.1f}% of a "
        f"{CLOCK_HZ / 1e6:g} MHz core ({costs['total_per_second'] / CLOCK_HZ * 1e3:.1f} ms per second; "
        "instructions, not cycles)."
    )
    print(
        f"Feature extractor: flash {size['flash']:,} B (code {size['flash_code']:,} + tables "
        f"{size['flash_tables']:,}); "
        f"RAM {size['ram']:,} B (state {size['ram_state']:,} + window columns beyond the network's "
        f"{size['ram_window_extra']:,} + stack {size['ram_stack']:,}), not counting the {size['feature_window']:,}-B "
        f"feature window. Recognizer: flash {size['recognizer_flash']:,} B, RAM {size['recognizer_ram']:,} B."
    )
    print(f"Device outputs and events equal the native build's: {'yes' if matches else 'NO'}")
    if args.json:
        args.json.write_text(json.dumps(fig, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
