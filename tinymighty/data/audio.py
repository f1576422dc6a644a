"""WAV I/O shared by dataset generation, preparation and the report."""

import wave
from pathlib import Path

import numpy as np


def read_wav(path, expect_rate=16000) -> np.ndarray:
    """Mono 16-bit PCM WAV as float32 in [-1, 1)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() != expect_rate:
            raise ValueError(
                f"{path}: need mono 16-bit {expect_rate} Hz PCM, got {w.getnchannels()} ch, "
                f"{8 * w.getsampwidth()} bit, {w.getframerate()} Hz; resample it (e.g. with sox)"
            )
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0


def write_wav(path, samples: np.ndarray, rate=16000) -> None:
    pcm = np.clip(np.round(np.asarray(samples) * 32768.0), -32768, 32767).astype("<i2")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))
