"""Host build and execution of generated code, and the TFLM oracle it must match bit for bit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from .flatbuffer import read_graph

_ROOT = Path(__file__).resolve().parents[2]
KERNEL_DIR = _ROOT / "firmware" / "kernels"
KERNEL_HARNESS = _ROOT / "firmware" / "harness" / "kernel_harness.c"

HOST_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")


def build_host(
    model_dir, build_dir, *, emulate_dsp: bool = False, cc: str = "gcc", extra_cflags: tuple[str, ...] = ()
) -> Path:
    """Compiles model.c + kernels + host harness into an executable.

    emulate_dsp compiles the Cortex-M4 SIMD code path with portable stand-ins
    for its instructions, so host tests cover it bit for bit too.
    """
    model_dir, build_dir = Path(model_dir), Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    exe = build_dir / ("tm_host_dsp" if emulate_dsp else "tm_host")
    cmd = [
        cc,
        *HOST_CFLAGS,
        *(["-DTM_EMULATE_DSP"] if emulate_dsp else []),
        *extra_cflags,
        f"-I{model_dir}",
        f"-I{KERNEL_DIR}",
        str(model_dir / "model.c"),
        *sorted(str(p) for p in KERNEL_DIR.glob("*.c")),
        str(KERNEL_HARNESS),
        "-o",
        str(exe),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"host build failed:\n{' '.join(cmd)}\n{proc.stderr}")
    return exe


def run_host(exe, inputs: np.ndarray) -> np.ndarray:
    """Streams N int8 inputs through the host harness; returns (N, TM_OUTPUT_SIZE) int8."""
    x = np.ascontiguousarray(inputs, dtype=np.int8)
    if x.size == 0:
        raise ValueError("run_host needs at least one input")
    x = x.reshape(len(x), -1)
    proc = subprocess.run([str(exe)], input=x.tobytes(), capture_output=True)
    if proc.returncode:
        raise RuntimeError(f"{exe} exited with {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return np.frombuffer(proc.stdout, np.int8).reshape(len(x), -1)


def tflm_outputs(tflite_path, inputs: np.ndarray) -> np.ndarray:
    """Runs inputs one by one through TFLM's Python interpreter; returns (N, output_size) int8.

    model.evaluate.tflm_outputs on the model's bytes, with each input first shaped as the
    model's (batch-1) input tensor."""
    from ..model.evaluate import tflm_outputs as run_tflm  # imports TensorFlow

    path = Path(tflite_path)
    shape = read_graph(path).inputs[0].shape
    x = np.asarray(inputs, np.int8).reshape((-1,) + shape[1:])
    return np.asarray(run_tflm(path.read_bytes(), x), np.int8).reshape(len(x), -1)
