"""WAV I/O shared by dataset generation, preparation and the report.

Reading accepts mono PCM at the expected rate as 16-, 24- or 32-bit integers or 32-bit floats (the
formats recorders and editors write; WAVE_FORMAT_EXTENSIBLE included) and returns float32 in [-1, 1]:
16-bit samples give exactly the values they always did. Anything else (stereo, another rate, 8-bit,
64-bit float, compressed, a file that is not a WAV or is cut short) is an ``InputError`` naming the file,
what it holds, and the command that converts it.
"""

import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

PCM, IEEE_FLOAT, EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
# (format tag, bits per sample) -> numpy dtype of one sample and the divisor to [-1, 1)
_SAMPLE_TYPES = {(PCM, 16): ("<i2", 32768.0), (PCM, 24): (None, 8388608.0), (PCM, 32): ("<i4", 2147483648.0)}
_SAMPLE_TYPES[(IEEE_FLOAT, 32)] = ("<f4", 1.0)
_FORMAT_NAMES = {PCM: "integer PCM", IEEE_FLOAT: "float", 0x0002: "ADPCM", 0x0006: "A-law", 0x0007: "mu-law"}


def _convert_hint(expect_rate: int) -> str:
    return f"convert it to mono {expect_rate} Hz 16-bit PCM, e.g. `sox IN.wav -r {expect_rate} -c 1 -b 16 OUT.wav`"


@dataclass(frozen=True)
class WavInfo:
    """What a WAV header says, and where its samples are."""

    path: str
    format_tag: int
    channels: int
    rate: int
    bits: int
    frames: int
    data_offset: int

    @property
    def description(self) -> str:
        kind = _FORMAT_NAMES.get(self.format_tag, f"format 0x{self.format_tag:04X}")
        return f"{self.channels} ch, {self.bits}-bit {kind}, {self.rate} Hz"


def wav_info(path) -> WavInfo:
    """The header of a WAV file (no samples read). Raises InputError naming the file if it is not a
    readable RIFF/WAVE file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            if size == 0:
                raise InputError(f"{path}: the WAV file is empty (0 bytes); delete it or record it again")
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                what = "cut inside its RIFF header" if head[:4] == b"RIFF" and len(head) < 12 else "not a WAV file"
                raise InputError(
                    f"{path}: {what} (it starts with {head[:12]!r}, a WAV file starts with b'RIFF....WAVE'); "
                    "replace it with a real WAV recording or remove it from the dataset"
                )
            fmt = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    missing = "'fmt ' chunk" if fmt is None else "'data' chunk"
                    raise InputError(
                        f"{path}: the WAV file is cut short ({size} bytes): it ends before its {missing}; "
                        "the copy or download was interrupted, so copy it again"
                    )
                cid, clen = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                start = f.tell()
                if cid == b"fmt ":
                    body = f.read(clen)
                    if len(body) < 16:
                        raise InputError(f"{path}: the WAV file is cut inside its 'fmt ' chunk; copy it again")
                    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
                    if tag == EXTENSIBLE and len(body) >= 26:
                        tag = struct.unpack("<H", body[24:26])[0]  # the sub-format GUID starts with the tag
                    fmt = (tag, channels, rate, bits)
                elif cid == b"data":
                    if fmt is None:
                        raise InputError(f"{path}: the WAV file has its 'data' chunk before 'fmt '; re-export it")
                    tag, channels, rate, bits = fmt
                    frame_bytes = max(1, channels * ((bits + 7) // 8))
                    if start + clen > size:
                        raise InputError(
                            f"{path}: the WAV file is cut short: its data chunk says {clen} bytes but only "
                            f"{size - start} follow; the copy or download was interrupted, so copy it again"
                        )
                    return WavInfo(str(path), tag, channels, rate, bits, clen // frame_bytes, start)
                f.seek(start + clen + (clen & 1))  # chunks are padded to an even length
    except OSError as err:
        raise InputError(f"{path}: cannot read the WAV file ({err.strerror or err}); check that it exists") from err


def check_format(info: WavInfo, expect_rate: int = 16000) -> None:
    """Raises InputError naming the file and its format unless read_wav can take it."""
    if info.channels != 1 or info.rate != expect_rate or (info.format_tag, info.bits) not in _SAMPLE_TYPES:
        raise InputError(
            f"{info.path}: need a mono {expect_rate} Hz WAV of 16-, 24- or 32-bit integer or 32-bit float "
            f"samples, got {info.description}; {_convert_hint(expect_rate)}"
        )


def read_wav(path, expect_rate=16000) -> np.ndarray:
    """Mono 16/24/32-bit integer or 32-bit float PCM WAV as float32 in [-1, 1]."""
    info = wav_info(path)
    check_format(info, expect_rate)
    dtype, scale = _SAMPLE_TYPES[(info.format_tag, info.bits)]
    width = info.bits // 8
    with open(path, "rb") as f:
        f.seek(info.data_offset)
        raw = f.read(info.frames * width)
    if dtype is None:  # 24-bit: sign-extend three little-endian bytes into an int32
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        data = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8
    else:
        data = np.frombuffer(raw, dtype=dtype)
    if info.format_tag == IEEE_FLOAT:
        if not np.isfinite(data).all():
            raise InputError(f"{path}: the float WAV holds NaN or infinite samples; re-export it")
        return np.clip(data, -1.0, 1.0).astype(np.float32)
    return data.astype(np.float32) / np.float32(scale)


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


def loudest_start(x: np.ndarray, n: int, hop: int = 160) -> int:
    """Start of the n-sample window with the most energy (on a hop-sample grid; the first on ties)."""
    if len(x) <= n:
        return 0
    energy = np.concatenate([[0.0], np.cumsum(np.square(x, dtype=np.float64))])
    starts = np.arange(0, len(x) - n + 1, hop)
    return int(starts[np.argmax(energy[starts + n] - energy[starts])])
