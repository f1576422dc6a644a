"""Measuring one firmware image: sizes, memory, time per inference and every input's output."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..budgets import FLASH_BYTES, RAM_BYTES
from .backends import connect, make_backend
from .build import elf_sizes
from .protocol import BoardReset, DeviceClient, DeviceError

CALIBRATION_LOOPS = 1_000_000  # 2M instructions: the 40-instruction tick quantum is 0.002 %
BATCH_CHUNK = 128  # inputs per BATCH request, so a damaged line costs a short retry


def over_inputs(per_input) -> dict:
    """The median and the range of one figure over the benchmark inputs: the median is the headline, and the
    range goes with it, since an inference's instruction count depends a little on its input (data-dependent
    branches in the kernels), so no one input stands for the others."""
    v = np.asarray(per_input, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"need one figure per benchmark input, got shape {v.shape}")
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}


def bench_inputs(client: DeviceClient, backend, inputs: np.ndarray, runs: int, timeout: float | None = None) -> list:
    """Tick counts of `runs` back-to-back inferences of each input, in one session: BENCH at the input's
    address when the backend preloaded them all (as inputs[0] onwards), else LOAD it first."""
    addr = backend.preload_addr
    ticks = []
    for i, x in enumerate(inputs):
        if addr is None:
            client.load_input(x)
        ticks.append(client.bench(runs, None if addr is None else addr + i * x.size, timeout=timeout))
    return ticks


def _timing(ticks: list[list[int]], tick_hz: int, insns_per_tick: float | None) -> dict:
    """ticks: per benchmark input, its runs. Each input's figure is the median of its runs; the headline is
    the median over inputs, with their min and max."""
    per_input = [float(np.median(t)) for t in ticks]
    timing = {
        "n": len(ticks[0]),
        "inputs": len(ticks),
        "tick_hz": tick_hz,
        "ticks": ticks,
        "ticks_median": over_inputs(per_input)["median"],
    }
    if insns_per_tick is not None:
        insns = over_inputs([t * insns_per_tick for t in per_input])
        timing.update(
            {
                "unit": "emulated instructions (QEMU -icount instruction count, not Cortex-M4 cycles)",
                "instructions_per_input": [t * insns_per_tick for t in per_input],
                **{f"instructions_{k}": v for k, v in insns.items()},
                "instructions_spread": insns["max"] - insns["min"],
                # Between runs of one input: 0 under QEMU's -icount; a board's timer may jitter.
                "instructions_run_spread": max((max(t) - min(t)) * insns_per_tick for t in ticks),
                "instructions_resolution": insns_per_tick,
            }
        )
    else:  # a real board's timer: ticks are time
        secs = over_inputs([t / tick_hz for t in per_input])
        timing.update({"unit": "ticks", **{f"seconds_{k}": v for k, v in secs.items()}})
    return timing


def _run_all(
    client: DeviceClient, backend, inputs: np.ndarray, n_bench: int, timing_inputs: int, expected_model: str | None
):
    """Every request of one measurement, in order: nothing of it is kept if any of it fails."""
    info = client.identify()
    if expected_model is not None and info["model"] != expected_model:
        raise client._fail(
            f"the device runs model {info['model']} but this variant's model is {expected_model}: it holds another "
            "variant's firmware; build and flash this variant's (for the Nano 33 BLE Sense: its Arduino sketch, "
            "results/firmware/<arch>/<variant>/arduino/kws)"
        )
    if inputs.shape[1] != info["in"]:
        raise client._fail(
            f"the inputs have {inputs.shape[1]} values each but the firmware's model {info['model']} takes "
            f"{info['in']}: the firmware was built from another model; rebuild it from this variant"
        )
    insns_per_tick = backend.instructions_per_tick(info["tick_hz"])
    calibration = _check_calibration(client, insns_per_tick) if insns_per_tick else None

    ticks = bench_inputs(client, backend, inputs[:timing_inputs], n_bench)

    preload = backend.preload_addr
    n, size = inputs.shape
    if preload is None:
        runs = [client.infer(x) for x in inputs]
        predictions = np.array([r["class"] for r in runs], dtype=np.int64)
        outputs = np.stack([r["output"] for r in runs])
    else:
        parts = [
            client.batch(preload + start * size, min(BATCH_CHUNK, n - start)) for start in range(0, n, BATCH_CHUNK)
        ]
        predictions = np.concatenate([p for p, _ in parts])
        outputs = np.concatenate([o for _, o in parts])
    return info, ticks, predictions, outputs, client.memory(), calibration, insns_per_tick


def _check_calibration(client: DeviceClient, insns_per_tick: float) -> dict:
    """Times the firmware's known loop to confirm ticks convert to instructions as assumed."""
    cal = client.calibrate(CALIBRATION_LOOPS)
    measured = cal["loop_insns"] / cal["ticks"]
    if abs(measured / insns_per_tick - 1) > 0.001:
        raise client._fail(
            f"tick calibration: {measured:.3f} instructions per tick, expected {insns_per_tick:.3f}; "
            "is QEMU running with -icount shift=0?"
        )
    return {"loop_instructions": cal["loop_insns"], "ticks": cal["ticks"], "instructions_per_tick": measured}


def measure(
    elf,
    backend_cfg: dict,
    inputs: np.ndarray,
    n_bench: int = 10,
    log_path="device.log",
    timeout: float = 5.0,
    timing_inputs: int = 1,
    expected_model: str | None = None,
    sizes: dict | None = None,
) -> dict:
    """Measures one firmware image: sizes, memory, time per inference and every input's output.

    inputs: int8 (N, in_size), already quantized with the model's input scale/zero point.
    timeout: seconds to wait for a reply that asks for no work; requests that run inferences wait that plus
    ten times what their inferences take (learnt from the BENCH), so a dead device fails in seconds and a
    slow one is still waited for.
    timing_inputs: time the first this many inputs (at most N), n_bench runs each (see _timing).
    expected_model: the model hash (codegen's model_hash) the device must report in ID, else a DeviceError
    naming both: a board may still run another variant's firmware.
    sizes: the image's flash and RAM (elf_sizes), when elf is not what runs (a board's sketch is built by the
    Arduino core; its figures come from the nRF52840 link check). Static RAM the device cannot report (0 in
    MEM) is taken from them.
    A device that resets during the run (it sends READY again) is measured again from the start, once; what
    it answered before the reset is dropped.
    Returns identify info, flash/RAM figures, timing,
    and per-input "predictions" (N,) and "outputs" (N, out_size) as numpy arrays."""
    inputs = np.asarray(inputs)
    if inputs.ndim != 2 or inputs.dtype != np.int8 or len(inputs) == 0:
        raise ValueError(f"inputs must be a non-empty int8 array (N, in_size), got {inputs.dtype} {inputs.shape}")
    if n_bench < 1:
        raise ValueError("n_bench must be at least 1 (10 or more for a meaningful median)")
    if timing_inputs < 1:
        raise ValueError("timing_inputs must be at least 1")
    if sizes is None:
        sizes = elf_sizes(elf) if backend_cfg.get("kind", "qemu") != "host" else {}
    backend = make_backend(backend_cfg, elf, preload=np.ascontiguousarray(inputs).tobytes())
    with connect(backend, log_path, timeout=timeout) as client:
        for attempt in (1, 2):
            try:
                run = _run_all(client, backend, inputs, n_bench, timing_inputs, expected_model)
                break
            except BoardReset:
                if attempt == 2:
                    raise
                client.transcript.note("measuring again from the start after the reset")
        client.exit(0)
    info, ticks, predictions, outputs, memory, calibration, insns_per_tick = run
    if memory["stack_size"] and memory["stack_used"] >= memory["stack_size"]:
        raise DeviceError(
            f"the firmware used all of its {memory['stack_size']}-byte stack, so its results are "
            "not trustworthy: rebuild with a larger STACK_SIZE",
            Path(log_path),
        )

    measured = "device"
    if not (memory["data"] or memory["bss"] or memory["stack_size"]) and sizes.get("ram_static"):
        # A board whose core owns the memory map cannot tell its image's RAM apart (MEM's zeros): the link's
        # figures stand in, the stack as the computed bound.
        measured = "link"
        stack = sizes.get("stack_bound") or 0
        memory = dict(memory, data=sizes["ram_data"], bss=sizes["ram_bss"], stack_size=stack, stack_used=stack)
    ram = {
        "data": memory["data"],
        "bss": memory["bss"],
        "static": memory["data"] + memory["bss"],
        "arena": memory["arena"],
        "stack_size": memory["stack_size"],
        "stack_high_water": memory["stack_used"],
        "peak": memory["data"] + memory["bss"] + memory["stack_used"],
        "budget": sizes.get("ram_budget", RAM_BYTES),
        "measured": measured,
    }
    flash = {}
    if sizes:
        flash = {
            "total": sizes["flash_total"],
            "model": sizes["flash_model"],
            "code": sizes["flash_code"],
            "model_weight_bytes": info["weights"],
            "budget": sizes.get("flash_budget", FLASH_BYTES),
        }
    return {
        "identify": info,
        "flash": flash,
        "ram": ram,
        "elf": sizes,
        "timing": _timing(ticks, info["tick_hz"], insns_per_tick),
        "calibration": calibration,
        "predictions": predictions,
        "outputs": outputs,
        "log_path": str(log_path),
    }
