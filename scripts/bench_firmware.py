#!/usr/bin/env python3
"""Benchmark one int8 .tflite on the Cortex-M4 firmware against the issue-3 targets.

    python scripts/bench_firmware.py                               # the PTQ int8 TinyConv (see below)
    python scripts/bench_firmware.py model.tflite                  # QEMU mps2-an386
    python scripts/bench_firmware.py model.tflite --compare-fusion # also measure conv+FC unfused
    python scripts/bench_firmware.py --model-dir out/model         # already generated model.c/.h
    python scripts/bench_firmware.py model.tflite --backend serial --port /dev/ttyACM0
    python scripts/bench_firmware.py --prune 0.9                   # a 90%-pruned TinyConv, sparse vs dense

Without a model it takes results/variants/tinyconv/ptq_int8/model.tflite when the workflow has
made it, and otherwise builds a PTQ int8 TinyConv itself (2 epochs on random data: its weights
are meaningless, its shapes, op mix and cost are the real model's).

The model is compiled with tinymighty.codegen (unless --model-dir is given), built with
firmware/Makefile and measured with tinymighty.device.measure on random int8 inputs (or the
rows of --inputs, an .npy of int8 model inputs); the device's outputs are checked against the
host build of the same model.c. Timing under QEMU is in emulated instructions (QEMU's -icount
instruction count), not Cortex-M4 cycles. Printed: the targets table (ours / must reach / aim,
PASS or MISS), instructions per MAC, the flash and RAM splits, and for models with sparse
weights the same model with dense kernels. It reports figures; it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from tinymighty import device

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TFLITE = ROOT / "results" / "variants" / "tinyconv" / "ptq_int8" / "model.tflite"

# Issue 3, for the PTQ int8 TinyConv on the emulated Cortex-M4: (figure, must reach, aim).
# The must-reach figures are what an interpreter runtime with vendor-optimised kernels reaches.
TARGETS = (
    ("instructions", "emulated instructions / inference", 2_400_000, 1_000_000),
    ("ram_total", "RAM total (static + stack high-water)", 6_000, 3_000),
    ("flash_total", "flash total (no test inputs baked in)", 29_000, None),
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "tflite",
        nargs="?",
        type=Path,
        help=f"fully int8 .tflite model (default: {DEFAULT_TFLITE.relative_to(ROOT)} if it exists, "
        "else a freshly built PTQ int8 TinyConv)",
    )
    p.add_argument("--model-dir", type=Path, help="use this generated model.c/model.h instead of a .tflite")
    p.add_argument("--work-dir", type=Path, help="keep generated code, builds and transcripts here")
    p.add_argument("--inputs", type=Path, help=".npy of int8 inputs (N, input size); default random")
    p.add_argument("--n-inputs", type=int, default=100, help="random inputs to run (default 100)")
    p.add_argument("--bench-runs", type=int, default=10, help="timed runs for the median (default 10)")
    p.add_argument(
        "--prune",
        type=float,
        metavar="FRACTION",
        help="build a TinyConv itself (as without a model) with this fraction of its conv and dense "
        "weights pruned by magnitude, then PTQ int8; the sparse and dense-kernel builds are compared",
    )
    p.add_argument(
        "--sparse-threshold",
        type=float,
        default=0.7,
        help="codegen: layers sparser than this use the sparse encoding (default 0.7, as the workflow)",
    )
    p.add_argument("--no-fuse", action="store_true", help="codegen: keep CONV_2D and FULLY_CONNECTED separate")
    p.add_argument("--compare-fusion", action="store_true", help="also measure the model with the other fusion setting")
    p.add_argument("--backend", choices=("qemu", "serial"), default="qemu")
    p.add_argument("--port", help="serial port or pyserial URL for --backend serial")
    p.add_argument("--baudrate", type=int, default=115200)
    p.add_argument("--json", type=Path, help="also write the figures (without per-input outputs) here")
    args = p.parse_args(argv)
    if args.tflite is not None and args.model_dir is not None:
        p.error("give a .tflite or --model-dir, not both")
    if args.prune is not None and (args.tflite is not None or args.model_dir is not None):
        p.error("--prune builds its own model: give no .tflite or --model-dir")
    if args.prune is not None and not 0.0 < args.prune < 1.0:
        p.error("--prune takes a fraction in (0, 1)")
    if args.model_dir is not None and args.compare_fusion:
        p.error("--compare-fusion needs a .tflite to generate code from")
    if args.backend == "serial" and not args.port:
        p.error("--backend serial needs --port, e.g. --port /dev/ttyACM0")
    return args


# ---------------------------------------------------------------------------------------------
# Model


def prune_by_magnitude(model, fraction: float, layers=("conv", "dense")) -> None:
    """Zeroes the smallest-magnitude `fraction` of each named layer's kernel: the
    mask tfmot's magnitude pruning ends with at that target sparsity (unstructured,
    per layer), applied in one shot; biases are kept."""
    for name in layers:
        layer = model.get_layer(name)
        w, *rest = layer.get_weights()
        n = int(round(fraction * w.size))
        if n:
            order = np.argsort(np.abs(w), axis=None, kind="stable")
            flat = w.reshape(-1).copy()
            flat[order[:n]] = 0
            w = flat.reshape(w.shape)
        layer.set_weights([w, *rest])


def build_default_tinyconv(path: Path, seed: int = 0, prune: float | None = None) -> Path:
    """A PTQ int8 TinyConv (49x40 features, 4 labels) after 2 epochs on random data;
    with prune, that fraction of its conv and dense kernels zeroed by magnitude first."""
    from tinymighty import tfutil
    from tinymighty.model import architectures as models
    from tinymighty.model import convert

    tfutil.make_deterministic(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 49, 40)).astype(np.float32)
    y = rng.integers(0, 4, size=200)
    model = models.build("tinyconv", (49, 40), 4)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=50, verbose=0)
    if prune:
        prune_by_magnitude(model, prune)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(convert.to_int8(model, x, 64))
    return path


def generate(tflite: Path, out_dir: Path, **options) -> dict:
    try:
        from tinymighty.codegen import generate as codegen_generate
    except ImportError as exc:
        sys.exit(f"tinymighty.codegen is not available ({exc}); generate model.c/.h elsewhere and pass --model-dir")
    return codegen_generate(tflite, out_dir, **options)


def codegen_info(model_dir: Path) -> dict | None:
    """The codegen summary the workflow writes next to a generated model, if any."""
    for path in (model_dir / "codegen.json", model_dir.parent / "codegen.json"):
        if path.is_file():
            return json.loads(path.read_text())
    return None


def input_size(model_dir: Path) -> int:
    for line in (model_dir / "model.h").read_text().splitlines():
        parts = line.split()
        if parts[:2] == ["#define", "TM_INPUT_SIZE"]:
            return int(parts[2])
    sys.exit(f"{model_dir / 'model.h'} defines no TM_INPUT_SIZE: is it a generated model header?")


# ---------------------------------------------------------------------------------------------
# Measurement


def measure(model_dir: Path, build_dir: Path, inputs: np.ndarray, args) -> dict:
    """Builds and measures one model; checks the device against the host build output by output."""
    elf = device.build_firmware(model_dir, build_dir / "mps2")
    backend = (
        {"kind": "qemu"} if args.backend == "qemu" else {"kind": "serial", "url": args.port, "baudrate": args.baudrate}
    )
    m = device.measure(elf, backend, inputs, n_bench=args.bench_runs, log_path=build_dir / "device.log")
    host_exe = device.build_firmware(model_dir, build_dir / "host", board="host")
    host = device.measure(host_exe, {"kind": "host"}, inputs, n_bench=1, log_path=build_dir / "host.log")
    m["matches_host"] = bool(np.array_equal(m["outputs"], host["outputs"]))
    return m


def figures(m: dict, info: dict | None) -> dict:
    t, f, r = m["timing"], m["flash"], m["ram"]
    insns = t.get("instructions_median")
    macs = info.get("macs") if info else None
    return {
        "instructions": insns,
        "ticks": t["ticks_median"],
        "tick_hz": t["tick_hz"],
        "macs": macs,
        "instructions_per_mac": insns / macs if insns and macs else None,
        "ram_total": r["static"] + r["stack_high_water"],
        "ram_static": r["static"],
        "ram_data": r["data"],
        "ram_bss": r["bss"],
        "ram_arena": r["arena"],
        "ram_app": r["static"] - r["arena"],
        "ram_stack_high_water": r["stack_high_water"],
        "ram_stack_reserved": r["stack_size"],
        "flash_total": f.get("total"),
        "flash_model": f.get("model"),
        "flash_code": f.get("code"),
        "weight_bytes": f.get("model_weight_bytes"),
        "matches_host": m["matches_host"],
        "fused": [x["kernel"] for x in info.get("fused", [])] if info else None,
        "sparse_layers": [l["op"] for l in info["layers"] if l.get("encoding") == "sparse"] if info else None,
    }


# ---------------------------------------------------------------------------------------------
# Report


def _n(v, fmt="{:,.0f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def target_table(fig: dict) -> list[str]:
    rows = [f"{'figure':40} {'ours':>11} {'must reach':>12} {'':5} {'aim':>11} {'':5}"]
    for key, label, must, aim in TARGETS:
        v = fig.get(key)

        def verdict(limit, v=v):
            return "" if limit is None or v is None else ("PASS" if v <= limit else "MISS")

        rows.append(
            f"{label:40} {_n(v):>11} {'<= ' + _n(must):>12} {verdict(must):5} "
            f"{('<= ' + _n(aim)) if aim else '-':>11} {verdict(aim):5}"
        )
    return rows


def details(fig: dict, label: str = "") -> list[str]:
    head = f"  [{label}] " if label else "  "
    ipm = fig["instructions_per_mac"]
    lines = [
        f"{head}instructions per MAC: {_n(ipm, '{:.2f}')} ({_n(fig['instructions'])} instructions / "
        f"{_n(fig['macs'])} MACs; the M4's dual MAC does 2 per instruction, floor 0.50)",
        f"{head}flash: {_n(fig['flash_total'])} B = model {_n(fig['flash_model'])} B "
        f"(weights {_n(fig['weight_bytes'])} B) + code {_n(fig['flash_code'])} B",
        f"{head}RAM:   {_n(fig['ram_total'])} B = static {_n(fig['ram_static'])} B "
        f"(arena {_n(fig['ram_arena'])} B + app buffers etc. {_n(fig['ram_app'])} B; "
        f".data {_n(fig['ram_data'])} B, .bss {_n(fig['ram_bss'])} B) + stack high-water "
        f"{_n(fig['ram_stack_high_water'])} B (of {_n(fig['ram_stack_reserved'])} B reserved)",
    ]
    if fig["fused"] is not None:
        lines.append(
            f"{head}fused: {', '.join(fig['fused']) or 'nothing'}; sparse-encoded layers: "
            f"{', '.join(fig['sparse_layers']) or 'none'}"
        )
    lines.append(f"{head}device outputs {'match' if fig['matches_host'] else 'DIFFER FROM'} the host build")
    return lines


def comparison(rows: list[tuple[str, dict]]) -> list[str]:
    out = [f"  {'variant':28} {'instructions':>13} {'insn/MAC':>9} {'RAM total':>10} {'arena':>7} {'flash':>8}"]
    for name, fig in rows:
        out.append(
            f"  {name:28} {_n(fig['instructions']):>13} {_n(fig['instructions_per_mac'], '{:.2f}'):>9} "
            f"{_n(fig['ram_total']):>10} {_n(fig['ram_arena']):>7} {_n(fig['flash_total']):>8}"
        )
    return out


def sparse_vs_dense(results) -> list[str]:
    """The sparse-encoded build against the same model with dense kernels: instructions and flash."""
    by_name = {n: f for n, _, f in results}
    dense = next((n for n in by_name if n.endswith("dense kernels")), None)
    if dense is None:
        return []
    sparse, d = by_name[results[0][0]], by_name[dense]
    out = ["\nsparse weights vs the dense int8 model (same weights, dense kernels):"]
    if sparse["instructions"] and d["instructions"]:
        out.append(
            f"  instructions: sparse {_n(sparse['instructions'])} vs dense {_n(d['instructions'])}: "
            f"{d['instructions'] / sparse['instructions']:.2f}x fewer"
        )
    out.append(
        f"  model flash:  sparse {_n(sparse['flash_model'])} B vs dense {_n(d['flash_model'])} B "
        f"(weights {_n(sparse['weight_bytes'])} B vs {_n(d['weight_bytes'])} B); "
        f"flash total {_n(sparse['flash_total'])} B vs {_n(d['flash_total'])} B"
    )
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
        work = args.work_dir or Path(tmp)
        tflite = args.tflite
        if args.prune is not None:
            print(f"building a TinyConv pruned to {args.prune:.0%} by magnitude (2 epochs on random data)")
            tflite = build_default_tinyconv(work / f"tinyconv_pruned{args.prune:g}_int8.tflite", prune=args.prune)
        elif tflite is None and args.model_dir is None:
            if DEFAULT_TFLITE.is_file():
                tflite = DEFAULT_TFLITE
            else:
                print("no model given and no workflow PTQ TinyConv: building one (2 epochs on random data)")
                tflite = build_default_tinyconv(work / "tinyconv_ptq_int8.tflite")
        fuse = not args.no_fuse
        variants = []  # (name, model_dir, codegen info)
        if tflite is not None:
            print(f"model {tflite}")
            main_name = "fused" if fuse else "unfused"
            info = generate(
                tflite, work / main_name / "model", sparse_threshold=args.sparse_threshold, fuse_conv_fc=fuse
            )
            variants.append((main_name, work / main_name / "model", info))
            if args.compare_fusion:
                other = "unfused" if fuse else "fused"
                variants.append(
                    (
                        other,
                        work / other / "model",
                        generate(
                            tflite,
                            work / other / "model",
                            sparse_threshold=args.sparse_threshold,
                            fuse_conv_fc=not fuse,
                        ),
                    )
                )
            if any(l.get("encoding") == "sparse" for l in info["layers"]):
                name = f"{main_name}, dense kernels"
                variants.append(
                    (
                        name,
                        work / "dense" / "model",
                        generate(tflite, work / "dense" / "model", sparse_threshold=None, fuse_conv_fc=fuse),
                    )
                )
        else:
            variants.append(("given", args.model_dir, codegen_info(args.model_dir)))

        if args.inputs:
            inputs = np.load(args.inputs)
            inputs = inputs.reshape(len(inputs), -1).astype(np.int8)
        else:
            size = input_size(variants[0][1])
            inputs = np.random.default_rng(0).integers(-128, 128, size=(args.n_inputs, size), dtype=np.int8)

        results = []
        for name, model_dir, info in variants:
            m = measure(model_dir, work / name.replace(", ", "_").replace(" ", "_") / "build", inputs, args)
            results.append((name, m, figures(m, info)))

    name, m, fig = results[0]
    ident = m["identify"]
    print(
        f"\nfirmware model {ident['model']} on {ident['board']}, {len(inputs)} inputs, "
        f"median of {m['timing']['n']} timed runs"
        + ("" if "instructions_median" in m["timing"] else f" (ticks at {ident['tick_hz']:,} Hz, not instructions)")
    )
    print("\n".join(target_table(fig)))
    print("\n".join(details(fig)))
    if len(results) > 1:
        print("\nvariants of the same model:")
        print("\n".join(comparison([(n, f) for n, _, f in results])))
        print("\n".join(sparse_vs_dense(results)))
    print(f"\npredictions: {np.bincount(m['predictions']).tolist()} per class over {len(inputs)} inputs")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    n: {
                        "figures": f,
                        **{k: v for k, v in mm.items() if k not in ("outputs", "predictions", "log_path")},
                    }
                    for n, mm, f in results
                },
                indent=2,
                default=str,
            )
        )
    if not all(f["matches_host"] for _, _, f in results):
        sys.exit("the device's outputs differ from the host build's: the figures above are not trustworthy")


if __name__ == "__main__":
    main()
