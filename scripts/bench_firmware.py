#!/usr/bin/env python3
"""Benchmark int8 models on the Cortex-M4 firmware against the issue-11 targets.

    python scripts/bench_firmware.py                               # TinyConv, DS-CNN and TinyConv W4A8 (see below)
    python scripts/bench_firmware.py --arch tinyconv               # one of them (tinyconv, dscnn, tinyconv_w4a8)
    python scripts/bench_firmware.py model.tflite                  # any fully int8 model
    python scripts/bench_firmware.py model.tflite --compare-fusion # also measure conv+FC unfused
    python scripts/bench_firmware.py --model-dir out/model         # already generated model.c/.h
    python scripts/bench_firmware.py model.tflite --backend serial --port /dev/ttyACM0
    python scripts/bench_firmware.py --prune 0.9                   # a 90%-pruned TinyConv, sparse vs dense

Without a model it measures the PTQ int8 TinyConv and DS-CNN and the PTQ W4A8 TinyConv: the workflow's
results/variants/<arch>/<variant>/model.tflite where a run made them, otherwise models it builds itself
(2 epochs on random data, 1 for DS-CNN: their weights are meaningless, their shapes, op mix and cost are
the real models').

Each model is compiled with tinymighty.codegen (unless --model-dir is given), built with firmware/Makefile
and measured with tinymighty.device on random int8 inputs (or the rows of --inputs); the device's outputs
are checked against TFLM's Python interpreter (and against the host build for --model-dir). Timing under
QEMU is in emulated instructions (QEMU's -icount count), not Cortex-M4 cycles: the figure is the median
over --timing-inputs different inputs (--bench-runs runs each), with its range, since the count depends a
little on the input. Printed: the targets table (ours / must reach / aim, PASS or MISS), and per model
instructions per MAC, the per-kernel breakdown (each kernel call timed as the difference of tm_invoke
stopped after it and before it: -DTM_STOP_AFTER), flash (the flashed binary, and the model's constants) and
RAM (what the image reserves: .data + .bss + the stack region sized from the call graph; and what is used:
static + the painted stack high-water mark). It reports figures; it asserts nothing about them.
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
MODELS = {  # name: (architecture, workflow variant, builder's quantization)
    "tinyconv": ("tinyconv", "ptq_int8", "int8"),
    "dscnn": ("dscnn", "ptq_int8", "int8"),
    "tinyconv_w4a8": ("tinyconv", "ptq_w4a8", "w4a8"),
}

# Issue 11, on the emulated Cortex-M4: (model, figure key, label, must reach, aim). Lower is better.
TARGETS = (
    ("tinyconv", "instructions", "TinyConv PTQ int8, instructions / inference", 500_000, 300_000),
    ("tinyconv", "ram_reserved", "TinyConv PTQ int8, RAM reserved by the image", 3_584, 3_072),
    ("tinyconv", "flash_image", "TinyConv PTQ int8, flashed binary", 26_000, 22_000),
    ("dscnn", "instructions", "DS-CNN int8, instructions / inference", 18_500_000, 12_500_000),
    ("dscnn", "ram_reserved", "DS-CNN int8, RAM reserved by the image", 40_000, 36_000),
    ("tinyconv_w4a8", "flash_model", "TinyConv W4A8, model flash (weights + params)", 9_500, 9_000),
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tflite", nargs="?", type=Path, help="a fully int8 .tflite model (default: see above)")
    p.add_argument("--arch", choices=sorted(MODELS), action="append", help="only these default models")
    p.add_argument("--model-dir", type=Path, help="use this generated model.c/model.h instead of a .tflite")
    p.add_argument("--work-dir", type=Path, help="keep generated code, builds and transcripts here")
    p.add_argument("--inputs", type=Path, help=".npy of int8 inputs (N, input size); default random")
    p.add_argument("--n-inputs", type=int, default=32, help="random inputs checked against TFLM (default 32)")
    p.add_argument("--timing-inputs", type=int, default=10, help="inputs the instruction count is taken over")
    p.add_argument("--bench-runs", type=int, default=3, help="timed runs per timing input (default 3)")
    p.add_argument("--no-breakdown", action="store_true", help="skip the per-kernel breakdown")
    p.add_argument(
        "--prune",
        type=float,
        metavar="FRACTION",
        help="build a TinyConv itself with this fraction of its conv and dense weights pruned by magnitude, "
        "then PTQ int8; the sparse and dense-kernel builds are compared",
    )
    p.add_argument(
        "--sparse-threshold",
        type=float,
        default=0.8,
        help="codegen: layers sparser than this use the sparse encoding (default 0.8, as config.yaml)",
    )
    p.add_argument("--no-fuse", action="store_true", help="codegen: keep CONV_2D and FULLY_CONNECTED separate")
    p.add_argument("--compare-fusion", action="store_true", help="also measure the model with the other fusion setting")
    p.add_argument("--backend", choices=("qemu", "serial"), default="qemu")
    p.add_argument("--port", help="serial port or pyserial URL for --backend serial")
    p.add_argument("--baudrate", type=int, default=115200)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    given = [a for a in (args.tflite, args.model_dir, args.prune) if a is not None]
    if len(given) > 1:
        p.error("give at most one of a .tflite, --model-dir and --prune")
    if given and args.arch:
        p.error("--arch picks default models: give no .tflite, --model-dir or --prune with it")
    if args.prune is not None and not 0.0 < args.prune < 1.0:
        p.error("--prune takes a fraction in (0, 1)")
    if args.model_dir is not None and args.compare_fusion:
        p.error("--compare-fusion needs a .tflite to generate code from")
    if args.backend == "serial" and not args.port:
        p.error("--backend serial needs --port, e.g. --port /dev/ttyACM0")
    if min(args.n_inputs, args.timing_inputs, args.bench_runs) < 1:
        p.error("--n-inputs, --timing-inputs and --bench-runs must be at least 1")
    return args


# ---------------------------------------------------------------------------------------------
# Models


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


def build_model(path: Path, arch: str = "tinyconv", quant: str = "int8", prune: float | None = None) -> Path:
    """A PTQ model of arch (49x40 features, 4 labels) after a few epochs on random data: full int8, or W4A8
    (tfmot's n-bit scheme, 4-bit weights packed as INT4 by the converter); with prune, that fraction of the
    conv and dense kernels zeroed by magnitude first."""
    from tinymighty import tfutil
    from tinymighty.model import architectures as models
    from tinymighty.model import convert

    tfutil.make_deterministic(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 49, 40)).astype(np.float32)
    y = rng.integers(0, 4, size=200)
    model = models.build(arch, (49, 40), 4)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1 if arch == "dscnn" else 2, batch_size=50, verbose=0)
    if prune:
        prune_by_magnitude(model, prune)
    path.parent.mkdir(parents=True, exist_ok=True)
    if quant == "int8":
        path.write_bytes(convert.to_int8(model, x, 64))
    else:
        from tinymighty.quantization.export import to_tflite
        from tinymighty.quantization.grid import Spec
        from tinymighty.quantization.methods import calibrate, quantize

        qmodel = quantize(model, Spec("ptq_w4a8", "ptq", "n_bit", weight_bits=4, activation_bits=8))
        calibrate(qmodel, model, x)
        path.write_bytes(to_tflite(qmodel))
    return path


def default_model(name: str, work: Path) -> Path:
    arch, variant, quant = MODELS[name]
    workflow = ROOT / "results" / "variants" / arch / variant / "model.tflite"
    if workflow.is_file():
        return workflow
    print(f"{name}: no {workflow.relative_to(ROOT)} from the workflow, building one on random data")
    return build_model(work / f"{name}.tflite", arch, quant)


def generate(tflite: Path, out_dir: Path, **options) -> dict:
    from tinymighty.codegen import generate as codegen_generate

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


def backend_cfg(args) -> dict:
    return (
        {"kind": "qemu"} if args.backend == "qemu" else {"kind": "serial", "url": args.port, "baudrate": args.baudrate}
    )


def instructions_over_inputs(elf: Path, cfg: dict, inputs: np.ndarray, runs: int, log_path: Path) -> list[float]:
    """Emulated instructions (or ticks on a real board) of each input, the median of `runs` runs each."""
    backend = device.make_backend(cfg, elf, preload=np.ascontiguousarray(inputs).tobytes())
    with device.connect(backend, log_path, timeout=120) as client:
        info = client.identify()
        scale = backend.instructions_per_tick(info["tick_hz"]) or 1.0
        ticks = device.bench_inputs(client, backend, inputs, runs, timeout=120)
        client.exit(0)
    return [float(np.median(t)) * scale for t in ticks]


def breakdown(model_dir: Path, work: Path, kernels: list[str], x: np.ndarray, cfg: dict, full: float) -> list:
    """Each kernel call's instructions: tm_invoke stopped after call n (-DTM_STOP_AFTER=n), minus after n - 1."""
    rows, before = [], 0.0
    for n, kernel in enumerate(kernels, 1):
        if n == len(kernels):
            upto = full
        else:
            elf = device.build_firmware(model_dir, work / f"stop{n}", extra_cflags=f"-DTM_STOP_AFTER={n}")
            upto = instructions_over_inputs(elf, cfg, x[:1], 1, work / f"stop{n}.log")[0]
        rows.append((kernel, upto - before))
        before = upto
    return rows


def measure(name: str, model_dir: Path, work: Path, inputs: np.ndarray, args, info: dict | None, tflite) -> dict:
    """Builds one model and measures it: outputs against TFLM (or the host build), memory, instructions
    over several inputs, and the per-kernel breakdown."""
    cfg = backend_cfg(args)
    elf = device.build_firmware(model_dir, work / "mps2")
    m = device.measure(
        elf, cfg, inputs, n_bench=args.bench_runs, timing_inputs=args.timing_inputs, log_path=work / "device.log"
    )
    if tflite is not None:
        from tinymighty.codegen import tflm_outputs

        reference, against = tflm_outputs(tflite, inputs), "TFLM"
    else:
        host_exe = device.build_firmware(model_dir, work / "host", board="host")
        reference = device.measure(host_exe, {"kind": "host"}, inputs, n_bench=1, log_path=work / "host.log")["outputs"]
        against = "the host build"
    t = m["timing"]
    # Ticks where the board's timer does not count instructions.
    per_input = t.get("instructions_per_input") or [float(np.median(x)) for x in t["ticks"]]
    elf_sizes, ram, flash = m["elf"], m["ram"], m["flash"]
    macs = info.get("macs") if info else None
    insns = device.over_inputs(per_input)
    fig = {
        "model": name,
        "instructions": insns["median"],
        "instructions_min": insns["min"],
        "instructions_max": insns["max"],
        "instructions_inputs": len(per_input),
        "instructions_unit": t["unit"],
        "macs": macs,
        "instructions_per_mac": insns["median"] / macs if macs else None,
        "ram_reserved": elf_sizes["ram_reserved"],
        "ram_used": ram["static"] + ram["stack_high_water"],
        "ram_data": ram["data"],
        "ram_bss": ram["bss"],
        "ram_arena": ram["arena"],
        "ram_stack_reserved": ram["stack_size"],
        "ram_stack_bound": elf_sizes["stack_bound"],
        "ram_stack_high_water": ram["stack_high_water"],
        "flash_image": elf_sizes["flash_image"],
        "flash_model": flash.get("model"),
        "flash_code": flash.get("code"),
        "weight_bytes": flash.get("model_weight_bytes"),
        "matches": bool(np.array_equal(m["outputs"], reference)),
        "checked_against": against,
        "checked_inputs": len(inputs),
        "fused": [x["kernel"] for x in info.get("fused", [])] if info else None,
        "sparse_layers": [l["op"] for l in info["layers"] if l.get("encoding") == "sparse"] if info else None,
        "in_place": info.get("memory_plan", {}).get("in_place") if info else None,
        "stack_report": elf_sizes.get("stack_report"),
        "board": m["identify"]["board"],
    }
    kernels = [s for s in (info or {}).get("memory_plan", {}).get("steps", []) if s != "alias"]
    if not args.no_breakdown and kernels:
        fig["breakdown"] = breakdown(model_dir, work, kernels, inputs, cfg, per_input[0])
    return fig


# ---------------------------------------------------------------------------------------------
# Report


def _n(v, fmt="{:,.0f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def target_table(figs: dict) -> list[str]:
    rows = [f"{'figure':48} {'ours':>12} {'must reach':>14} {'':5} {'aim':>14} {'':5}"]
    for name, key, label, must, aim in TARGETS:
        if name not in figs:
            continue
        v = figs[name].get(key)

        def verdict(limit, v=v):
            return "" if limit is None or v is None else ("PASS" if v <= limit else "MISS")

        rows.append(
            f"{label:48} {_n(v):>12} {'<= ' + _n(must):>14} {verdict(must):5} {'<= ' + _n(aim):>14} {verdict(aim):5}"
        )
    return rows


def details(fig: dict) -> list[str]:
    head = f"  [{fig['model']}] "
    lines = [
        f"{head}instructions: median {_n(fig['instructions'])} over {fig['instructions_inputs']} inputs "
        f"(range {_n(fig['instructions_min'])} .. {_n(fig['instructions_max'])}); "
        f"{_n(fig['instructions_per_mac'], '{:.3f}')} per MAC over {_n(fig['macs'])} MACs "
        "(the M4's dual MAC does 2 per instruction: floor 0.50)",
        f"{head}flash: binary {_n(fig['flash_image'])} B = model {_n(fig['flash_model'])} B "
        f"(weights and parameters {_n(fig['weight_bytes'])} B) + code and the rest {_n(fig['flash_code'])} B",
        f"{head}RAM reserved {_n(fig['ram_reserved'])} B = .data {_n(fig['ram_data'])} + .bss {_n(fig['ram_bss'])} "
        f"(arena {_n(fig['ram_arena'])}) + stack {_n(fig['ram_stack_reserved'])} B (computed bound "
        f"{_n(fig['ram_stack_bound'])} B + margin); used {_n(fig['ram_used'])} B "
        f"(stack high-water {_n(fig['ram_stack_high_water'])} B)",
    ]
    if fig["fused"] is not None:
        lines.append(
            f"{head}fused: {', '.join(fig['fused']) or 'nothing'}; "
            f"in place: {', '.join(fig['in_place'] or []) or 'none'}; "
            f"sparse-encoded layers: {', '.join(fig['sparse_layers']) or 'none'}"
        )
    for kernel, n in fig.get("breakdown", []):
        share = n / fig["instructions"] if fig["instructions"] else 0
        lines.append(f"{head}  {kernel:28} {_n(n):>12} {share:6.1%}")
    lines.append(
        f"{head}outputs {'match' if fig['matches'] else 'DIFFER FROM'} {fig['checked_against']} on "
        f"{fig['checked_inputs']} inputs"
    )
    return lines


def sparse_vs_dense(figs: dict) -> list[str]:
    sparse, dense = figs.get("sparse"), figs.get("sparse, dense kernels")
    if not sparse or not dense:
        return []
    return [
        "\nsparse weights vs the same weights with dense kernels:",
        f"  instructions: sparse {_n(sparse['instructions'])} vs dense {_n(dense['instructions'])}: "
        f"{dense['instructions'] / sparse['instructions']:.2f}x fewer",
        f"  model flash:  sparse {_n(sparse['flash_model'])} B vs dense {_n(dense['flash_model'])} B; "
        f"binary {_n(sparse['flash_image'])} B vs {_n(dense['flash_image'])} B",
    ]


def main(argv=None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
        work = args.work_dir or Path(tmp)
        options = {"sparse_threshold": args.sparse_threshold, "fuse_conv_fc": not args.no_fuse}
        jobs = []  # (name, tflite or None, model_dir, generate options or None)
        if args.model_dir is not None:
            jobs.append(("given", None, args.model_dir, None))
        elif args.prune is not None:
            print(f"building a TinyConv pruned to {args.prune:.0%} by magnitude (2 epochs on random data)")
            tflite = build_model(work / f"tinyconv_pruned{args.prune:g}.tflite", prune=args.prune)
            jobs += [
                ("sparse", tflite, None, options),
                ("sparse, dense kernels", tflite, None, {**options, "sparse_threshold": None}),
            ]
        elif args.tflite is not None:
            jobs.append((args.tflite.stem, args.tflite, None, options))
        else:
            jobs += [(name, default_model(name, work), None, options) for name in (args.arch or list(MODELS))]
        if args.compare_fusion:
            jobs += [
                (
                    f"{n}, {'unfused' if o['fuse_conv_fc'] else 'fused'}",
                    t,
                    d,
                    {**o, "fuse_conv_fc": not o["fuse_conv_fc"]},
                )
                for n, t, d, o in list(jobs)
            ]

        figs = {}
        for name, tflite, model_dir, opts in jobs:
            slug = "".join(ch if ch.isalnum() else "_" for ch in name)
            info = codegen_info(model_dir) if model_dir is not None else None
            if model_dir is None:
                model_dir = work / slug / "model"
                info = generate(tflite, model_dir, **opts)
            size = input_size(model_dir)
            if args.inputs:
                x = np.load(args.inputs).reshape(-1, size).astype(np.int8)
            else:
                x = np.random.default_rng(0).integers(
                    -128, 128, size=(max(args.n_inputs, args.timing_inputs), size), dtype=np.int8
                )
            print(f"measuring {name} ({tflite or model_dir})", flush=True)
            figs[name] = measure(name, model_dir, work / slug / "build", x, args, info, tflite)

    print()
    if any(name in figs for name, *_ in TARGETS):
        print("\n".join(target_table(figs)))
    for fig in figs.values():
        print("\n".join(details(fig)))
    print("\n".join(sparse_vs_dense(figs)))
    if args.json:
        args.json.write_text(json.dumps(figs, indent=2, default=str))
    if not all(f["matches"] for f in figs.values()):
        sys.exit("the device's outputs differ from the reference: the figures above are not trustworthy")


if __name__ == "__main__":
    main()
