#!/usr/bin/env python3
"""Benchmark one int8 .tflite on the Cortex-M4 firmware: instructions per inference, flash, RAM.

    python scripts/bench_firmware.py model.tflite                  # QEMU mps2-an386
    python scripts/bench_firmware.py --model-dir out/model         # already generated model.c/.h
    python scripts/bench_firmware.py model.tflite --backend serial --port /dev/ttyACM0

The model is compiled with tinymighty.codegen (unless --model-dir is given), built with
firmware/Makefile and measured with tinymighty.device.measure on random int8 inputs (or the
rows of --inputs, an .npy of int8 model inputs).  Timing under QEMU is in emulated instructions
(QEMU's -icount instruction count), not Cortex-M4 cycles.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from tinymighty import device


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tflite", nargs="?", type=Path, help="fully int8 .tflite model")
    p.add_argument("--model-dir", type=Path, help="use this generated model.c/model.h instead of a .tflite")
    p.add_argument("--work-dir", type=Path, help="keep generated code, build and transcript here")
    p.add_argument("--inputs", type=Path, help=".npy of int8 inputs (N, input size); default random")
    p.add_argument("--n-inputs", type=int, default=100, help="random inputs to run (default 100)")
    p.add_argument("--bench-runs", type=int, default=10, help="timed runs for the median (default 10)")
    p.add_argument("--backend", choices=("qemu", "serial"), default="qemu")
    p.add_argument("--port", help="serial port or pyserial URL for --backend serial")
    p.add_argument("--baudrate", type=int, default=115200)
    p.add_argument("--json", type=Path, help="also write the figures (without per-input outputs) here")
    args = p.parse_args(argv)
    if (args.tflite is None) == (args.model_dir is None):
        p.error("give either a .tflite or --model-dir")
    if args.backend == "serial" and not args.port:
        p.error("--backend serial needs --port, e.g. --port /dev/ttyACM0")
    return args


def generate(tflite: Path, out_dir: Path) -> None:
    try:
        from tinymighty.codegen import generate as codegen_generate
    except ImportError as exc:
        sys.exit(f"tinymighty.codegen is not available ({exc}); generate model.c/.h elsewhere and pass --model-dir")
    codegen_generate(tflite, out_dir)


def input_size(model_dir: Path) -> int:
    for line in (model_dir / "model.h").read_text().splitlines():
        parts = line.split()
        if parts[:2] == ["#define", "TM_INPUT_SIZE"]:
            return int(parts[2])
    sys.exit(f"{model_dir / 'model.h'} defines no TM_INPUT_SIZE: is it a generated model header?")


def report(m: dict) -> str:
    t, f, r = m["timing"], m["flash"], m["ram"]
    if "instructions_median" in t:
        timing = (f"{t['instructions_median']:,.0f} emulated instructions per inference (median of {t['n']}, "
                  f"spread {t['instructions_spread']:,.0f}, resolution {t['instructions_resolution']:g})")
    else:
        timing = (f"{t['ticks_median']:,.0f} ticks per inference = {t['seconds_median'] * 1e3:.3f} ms "
                  f"(median of {t['n']})")
    return "\n".join([
        f"model {m['identify']['model']} on {m['identify']['board']}",
        f"time   {timing}",
        f"flash  {f['total']:,} B of {f['budget']:,} ({f['total'] / f['budget']:.1%}): "
        f"model {f['model']:,} B (weights {f['model_weight_bytes']:,} B), code {f['code']:,} B",
        f"RAM    {r['peak']:,} B peak of {r['budget']:,} ({r['peak'] / r['budget']:.1%}): static {r['static']:,} B "
        f"(arena {r['arena']:,} B), stack high-water {r['stack_high_water']:,} of {r['stack_size']:,} B",
    ])


def main(argv=None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
        work = args.work_dir or Path(tmp)
        model_dir = args.model_dir or work / "model"
        if args.tflite:
            generate(args.tflite, model_dir)
        elf = device.build_firmware(model_dir, work / "build")
        if args.inputs:
            inputs = np.load(args.inputs)
            inputs = inputs.reshape(len(inputs), -1)
        else:
            size = input_size(model_dir)
            inputs = np.random.default_rng(0).integers(-128, 128, size=(args.n_inputs, size), dtype=np.int8)
        backend = ({"kind": "qemu"} if args.backend == "qemu"
                   else {"kind": "serial", "url": args.port, "baudrate": args.baudrate})
        m = device.measure(elf, backend, inputs, n_bench=args.bench_runs, log_path=work / "device.log")
    print(report(m))
    print(f"predictions: {np.bincount(m['predictions']).tolist()} per class over {len(inputs)} inputs")
    if args.json:
        figures = {k: v for k, v in m.items() if k not in ("outputs", "predictions", "log_path")}
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
