"""TF's audio micro frontend as the firmware computes it: firmware/features/ (fixed-point C) on the host.

The same C files build for the Cortex-M4 and, here, into a shared library called through ctypes, so
the workflow's features and the device's features come from one definition.  For the same int16
samples the C gives exactly the uint16 output of TF's AudioMicrofrontend op (tests/test_frontend.py
checks it against the op), and the int8 model input exactly what ``npio.quantize_input`` makes of
``op output * 10/256``.

The C needs its tables (window, FFT twiddles, mel filterbank, PCAN gain curve, log table) computed the
way TF's ``*_util.c`` initialisers compute them, float rounding included.  ``write_tables`` does that
here, for any features config, and writes ``fe_config.h`` + ``fe_tables.c``; the default config's pair
is kept in ``firmware/features/default/`` for the firmware (regenerate it with
``python -m tinymighty.data.micro_frontend firmware/features/default``).

The shared library is built on first use with the host's gcc into ``<repo>/build/micro_frontend/<hash>/``
(``TINYMIGHTY_BUILD_DIR`` overrides ``<repo>/build``), keyed by the hash of the C sources, the tables
and the compiler flags, so an edit to the C or another config gets its own build and concurrent jobs
never see a half-written library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import math
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIR = ROOT / "firmware" / "features"
DEFAULT_TABLES_DIR = SOURCE_DIR / "default"
SOURCES = ("fe_frontend.c", "host/fe_host.c")  # host/ and bench/ are not firmware sources
HEADERS = ("fe_frontend.h", "fe_dsp.h")
HOST_CFLAGS = ("-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-fPIC", "-shared")

# features.py scales the op's output by this before training (TF's micro_speech recipe); the C's
# fe_quantize applies the same float32 product before dividing by the model's input scale.
OUT_SCALE = 10.0 / 256.0

# TF's fixed-point constants (the *_BITS macros of tensorflow/lite/experimental/microfrontend/lib).
_WINDOW_BITS = 12
_FILTERBANK_BITS = 12
_NOISE_REDUCTION_BITS = 14
_PCAN_SNR_BITS = 12
_WDF_BITS = 32  # kWideDynamicFunctionBits
_f32 = np.float32


@dataclass(frozen=True)
class FrontendConfig:
    """The op's arguments as features.py passes them; the rest are the Python wrapper's defaults
    (tensorflow/lite/experimental/microfrontend/python/ops/audio_microfrontend_op.py, TF 2.21)."""

    sample_rate: int = 16000
    window_ms: int = 30
    stride_ms: int = 20
    channels: int = 40
    clip_ms: int = 1000
    upper_band_limit: float = 7500.0
    lower_band_limit: float = 125.0
    smoothing_bits: int = 10
    even_smoothing: float = 0.025
    odd_smoothing: float = 0.06
    min_signal_remaining: float = 0.05
    pcan_strength: float = 0.95
    pcan_offset: float = 80.0
    gain_bits: int = 21
    scale_shift: int = 6

    @classmethod
    def from_features(cls, cfg) -> FrontendConfig:
        """From config.yaml's `features` mapping (window and stride are truncated to whole ms, as
        features.py passes them to the op)."""
        return cls(
            sample_rate=int(cfg["sample_rate"]),
            window_ms=int(cfg["window_ms"]),
            stride_ms=int(cfg["stride_ms"]),
            channels=int(cfg["channels"]),
            clip_ms=int(cfg["clip_ms"]),
        )

    @property
    def window(self) -> int:
        return self.window_ms * self.sample_rate // 1000

    @property
    def stride(self) -> int:
        return self.stride_ms * self.sample_rate // 1000

    @property
    def clip_samples(self) -> int:
        return self.sample_rate * self.clip_ms // 1000

    @property
    def frames(self) -> int:
        """Columns the op gives for one clip (features.frame_count)."""
        n = self.clip_samples
        return 0 if n < self.window else 1 + (n - self.window) // self.stride

    def check(self) -> None:
        w, s = self.window, self.stride
        if s <= 0 or w <= 0 or s > w:
            raise ValueError(f"micro frontend: window {w} and stride {s} samples must satisfy 0 < stride <= window")
        if w % 4:
            raise ValueError(f"micro frontend: the window must be a multiple of 4 samples, not {w}")
        if s % 2:
            raise ValueError(f"micro frontend: the stride must be an even number of samples, not {s}")


# ---------------------------------------------------------------------------------------------
# Tables, computed as TF's initialisers compute them.  C float expressions are mirrored with
# float32 rounding at each step (x86-64 evaluates float in float); double ones use Python floats;
# cos/sin/log1p/powf come from the same libm the op's shared library uses.


@lru_cache(maxsize=1)
def _libm():
    lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    lib.powf.restype = ctypes.c_float
    lib.powf.argtypes = [ctypes.c_float, ctypes.c_float]
    return lib


def _window_coefficients(size: int) -> list[int]:
    """window_util.c: Hann window, kFrontendWindowBits fractional bits."""
    arg = _f32(math.pi * 2.0 / float(_f32(size)))
    out = []
    for i in range(size):
        value = _f32(0.5 - 0.5 * math.cos(float(arg) * (i + 0.5)))
        out.append(math.floor(float(_f32(value * _f32(1 << _WINDOW_BITS))) + 0.5))
    return out


def _kiss_factors(n: int) -> list[tuple[int, int]]:
    """kissfft's kf_factor: powers of 4 first, then 2 (n is a power of two here)."""
    factors, p = [], 4
    floor_sqrt = math.floor(math.sqrt(n))
    while True:
        while n % p:
            p = 2 if p == 4 else (3 if p == 2 else p + 2)
            if p > floor_sqrt:
                p = n
        n //= p
        factors.append((p, n))
        if n <= 1:
            return factors


def _kiss_order(n: int, factors) -> list[int]:
    """Where kissfft's recursive decimation in time puts each input: order[position] = input index."""
    order = [0] * n

    def work(out, first, stride, level):
        p, m = factors[level]
        for j in range(p):
            if m == 1:
                order[out + j] = first + j * stride
            else:
                work(out + j * m, first + j * stride, stride * p, level + 1)

    work(0, 0, 1, 0)
    return order


def _cexp_q15(phase: float) -> tuple[int, int]:
    """kf_cexp with FIXED_POINT=16: floor(.5 + SAMP_MAX * cos/sin)."""
    return math.floor(0.5 + 32767 * math.cos(phase)), math.floor(0.5 + 32767 * math.sin(phase))


def _mel(freq) -> np.float32:
    """filterbank_util.c FreqToMel, float in and out, the log in double."""
    return _f32(1127.0 * math.log1p(float(_f32(freq)) / 700.0))


def _filterbank(cfg: FrontendConfig, spectrum_size: int):
    """filterbank_util.c: returns (start bin, first bin of each of channels+1 bands, weights, unweights)."""
    n1 = cfg.channels + 1
    mel_low = _mel(_f32(cfg.lower_band_limit))
    mel_high = _mel(_f32(cfg.upper_band_limit))
    spacing = _f32(_f32(mel_high - mel_low) / _f32(n1))
    centers = [_f32(mel_low + _f32(spacing * _f32(i + 1))) for i in range(n1)]
    hz_per_bin = _f32(0.5 * cfg.sample_rate / float(_f32(spectrum_size) - _f32(1)))
    start = int(1.5 + float(_f32(_f32(cfg.lower_band_limit) / hz_per_bin)))
    bounds, index = [], start
    for chan in range(n1):
        bounds.append(index)
        while _mel(_f32(_f32(index) * hz_per_bin)) <= centers[chan]:
            index += 1
    bounds.append(index)
    weights, unweights = [], []
    for chan in range(n1):
        denom = mel_low if chan == 0 else centers[chan - 1]
        for freq in range(bounds[chan], bounds[chan + 1]):
            w = _f32(_f32(centers[chan] - _mel(_f32(_f32(freq) * hz_per_bin))) / _f32(centers[chan] - denom))
            weights.append(math.floor(float(_f32(w * _f32(1 << _FILTERBANK_BITS))) + 0.5))
            unweights.append(math.floor((1.0 - float(w)) * (1 << _FILTERBANK_BITS) + 0.5))
    if bounds[-1] >= spectrum_size:
        raise ValueError(f"micro frontend: filterbank end bin {bounds[-1]} is above the spectrum ({spectrum_size})")
    return start, bounds, weights, unweights


def _pcan_gain(cfg: FrontendConfig, input_bits: int, x: int) -> int:
    """pcan_gain_control_util.c PcanGainLookupFunction (float math, glibc powf)."""
    x_f = _f32(_f32(x) / _f32(1 << input_bits))
    gain = _f32(
        _f32(1 << cfg.gain_bits)
        * _f32(_libm().powf(float(_f32(x_f + _f32(cfg.pcan_offset))), float(-_f32(cfg.pcan_strength))))
    )
    if gain > _f32(0x7FFF):
        return 0x7FFF
    return int(_f32(gain + _f32(0.5)))


def _int16(v: int) -> int:
    return (v + 0x8000) % 0x10000 - 0x8000


def _pcan_lut(cfg: FrontendConfig, input_bits: int) -> list[int]:
    """The wide dynamic function's table: gains at 0 and 1, then (y0, a1, a2) per interval 2..32
    (TF's layout without its unused fourth slot per interval)."""
    lut = [_pcan_gain(cfg, input_bits, 0), _pcan_gain(cfg, input_bits, 1)]
    for interval in range(2, _WDF_BITS + 1):
        x0 = 1 << (interval - 1)
        x1 = x0 + (x0 >> 1)
        x2 = x0 + (x0 - 1) if interval == _WDF_BITS else 2 * x0
        y0, y1, y2 = (_pcan_gain(cfg, input_bits, x) for x in (x0, x1, x2))
        a1 = 4 * (y1 - y0) - (y2 - y0)
        a2 = (y2 - y0) - a1
        lut += [y0, _int16(a1), _int16(a2)]
    return lut


def _log_lut() -> list[int]:
    """log_lut.c's kLogLut: log2(1 + x) - x on 128 segments, Q16, plus a padding entry."""
    return [round((math.log2(1 + i / 128) - i / 128) * 65536) for i in range(129)] + [0]


def tables(cfg: FrontendConfig, compact: bool = True) -> dict:
    """Every constant the C needs for this config.  compact=False keeps the whole window and both
    filterbank tables even where half of one or the other is derivable (the C handles both layouts;
    the tests use this to cover the general one)."""
    cfg.check()
    fft_size = 1
    while fft_size < cfg.window:
        fft_size <<= 1
    ncfft = fft_size // 2
    factors = _kiss_factors(ncfft)
    radices = [p for p, _ in factors]
    if any(p != 4 for p in radices[:-1]) or radices[-1] not in (2, 4):
        raise ValueError(f"micro frontend: FFT factors {radices} are not radix-4 stages (+ one radix-2)")
    order = _kiss_order(ncfft, factors)
    dest = [0] * ncfft
    for pos, idx in enumerate(order):
        dest[idx] = pos
    window = _window_coefficients(cfg.window)
    symmetric = compact and all(window[i] == window[-1 - i] for i in range(cfg.window))
    start, bounds, weights, unweights = _filterbank(cfg, ncfft + 1)
    # The first band's weights and the last band's unweights are never used (TF drops work[0] and
    # the unweights left over after the last band).  Where both are used, unweight = 4096 - weight
    # unless the float weight sat exactly on a rounding tie; then both tables are kept.
    one = 1 << _FILTERBANK_BITS
    first_end, last_start = bounds[1] - bounds[0], bounds[-2] - bounds[0]
    derived = compact and all(weights[i] + unweights[i] == one for i in range(first_end, last_start))
    if derived:  # the first band's (unused) weights become 4096 - unweight, so 4096 - weight is right there too
        weights = [one - unweights[i] if i < first_end else w for i, w in enumerate(weights)]
    # frontend_util.c: MostSignificantBit32(fft_size) - 1 - kFilterbankBits / 2, for PCAN and the log.
    correction_bits = fft_size.bit_length() - 1 - _FILTERBANK_BITS // 2
    return {
        "config": cfg,
        "fft_size": fft_size,
        "ncfft": ncfft,
        "radix2": int(radices[-1] == 2),
        "dest": dest,
        "twiddles": [_cexp_q15(-2 * math.pi * i / ncfft) for i in range(ncfft)],
        "super": [_cexp_q15(-math.pi * ((i + 1) / ncfft + 0.5)) for i in range(ncfft // 2)],
        "window": window[: cfg.window // 2] if symmetric else window,
        "window_half": int(symmetric),
        "fb_start": start,
        "fb_bounds": [b - start for b in bounds],
        "fb_weights": weights,
        "fb_unweights": None if derived else unweights,
        "nr_even": int(_f32(cfg.even_smoothing) * _f32(1 << _NOISE_REDUCTION_BITS)),
        "nr_odd": int(_f32(cfg.odd_smoothing) * _f32(1 << _NOISE_REDUCTION_BITS)),
        "nr_min": int(_f32(cfg.min_signal_remaining) * _f32(1 << _NOISE_REDUCTION_BITS)),
        "pcan_lut": _pcan_lut(cfg, cfg.smoothing_bits - correction_bits),
        "pcan_snr_shift": cfg.gain_bits - correction_bits - _PCAN_SNR_BITS,
        "log_correction": correction_bits,
        "log_lut": _log_lut(),
    }


def _c_array(ctype: str, name: str, values, per_line: int = 12) -> str:
    vals = [str(v) for v in values]
    lines = [", ".join(vals[i : i + per_line]) for i in range(0, len(vals), per_line)]
    return f"const {ctype} {name}[{len(vals)}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def _pack(pairs) -> list[str]:
    return [f"0x{(re & 0xFFFF) | ((im & 0xFFFF) << 16):08x}u" for re, im in pairs]


def config_hash(cfg: FrontendConfig) -> str:
    return hashlib.sha256(repr(sorted(asdict(cfg).items())).encode()).hexdigest()[:16]


def render_tables(cfg: FrontendConfig, compact: bool = True) -> tuple[str, str]:
    """(fe_config.h, fe_tables.c) for this config."""
    t = tables(cfg, compact)
    ncfft = t["ncfft"]
    # The radix-4 stages after the first, in order, each with its (w^k, w^2k, w^3k) triples for
    # k = 0 .. m-1 (twiddle index times the stage's stride ncfft / 4m); the first stage uses w^0,
    # the first entry.
    tw = t["twiddles"]
    stage_tw = []
    m = 2 if t["radix2"] else 4
    while m < ncfft:
        fs = ncfft // (4 * m)
        for k in range(m):
            stage_tw += [tw[k * fs], tw[2 * k * fs], tw[3 * k * fs]]
        m *= 4
    n_tw = len(stage_tw)
    dest_t = "uint8_t" if ncfft <= 256 else "uint16_t"
    params = ", ".join(f"{k}={v}" for k, v in asdict(cfg).items())
    # Generated layout, not the house style: clang-format (tests/test_style.py) leaves these files alone.
    tag = f"// clang-format off\n/* Generated by tinymighty.data.micro_frontend for {params}. Do not edit. */\n"
    window_n = len(t["window"])
    defines = [
        ("FE_CONFIG_HASH", f'"{config_hash(cfg)}"', "micro_frontend.config_hash of the config"),
        ("FE_SAMPLE_RATE", cfg.sample_rate, None),
        ("FE_WINDOW", cfg.window, "samples per window"),
        ("FE_STRIDE", cfg.stride, "samples per stride: one new column"),
        ("FE_CHANNELS", cfg.channels, None),
        ("FE_CLIP_SAMPLES", cfg.clip_samples, None),
        ("FE_FRAMES", cfg.frames, "columns of one clip"),
        ("FE_FFT_SIZE", t["fft_size"], "real FFT length"),
        ("FE_FFT_COMPLEX", ncfft, "kissfft's complex FFT length (FE_FFT_SIZE / 2)"),
        ("FE_FFT_RADIX2", t["radix2"], "1: the first stage is radix-2, the rest radix-4"),
        ("FE_FFT_TWIDDLES", n_tw, None),
        ("FE_WINDOW_HALF", t["window_half"], "1: fe_window_coef holds the first half of a symmetric window"),
        ("FE_WINDOW_COEFS", window_n, None),
        ("FE_FB_START", t["fb_start"], "first FFT bin of the filterbank"),
        ("FE_FB_BINS", len(t["fb_weights"]), None),
        ("FE_FB_UNWEIGHTS", int(t["fb_unweights"] is not None), "0: unweight = 4096 - weight"),
        ("FE_NR_SMOOTHING_BITS", cfg.smoothing_bits, None),
        ("FE_NR_EVEN", t["nr_even"], None),
        ("FE_NR_ODD", t["nr_odd"], None),
        ("FE_NR_MIN_SIGNAL", t["nr_min"], None),
        ("FE_PCAN_SNR_SHIFT", t["pcan_snr_shift"], None),
        ("FE_LOG_CORRECTION", t["log_correction"], None),
        ("FE_LOG_SCALE_SHIFT", cfg.scale_shift, None),
    ]
    width = 2 + max(len(f"#define {name} {value}") for name, value, comment in defines if comment)
    lines = []
    for name, value, comment in defines:
        line = f"#define {name} {value}"
        lines.append(f"{line:<{width}}/* {comment} */" if comment else line)
    header = (
        tag
        + "#ifndef FE_CONFIG_H\n#define FE_CONFIG_H\n\n#include <stdint.h>\n\n"
        + "\n".join(lines)
        + f"""

extern const uint32_t fe_window_coef[FE_WINDOW_COEFS / 2];  /* int16 pairs, lo = even index */
extern const {dest_t} fe_fft_dest[FE_FFT_COMPLEX];          /* where input pair n goes for the FFT */
extern const uint32_t fe_fft_twiddle[FE_FFT_TWIDDLES];      /* Q15 (re, im), per stage and k: w^k, w^2k, w^3k */
extern const uint32_t fe_fft_super[FE_FFT_COMPLEX / 2];     /* real-FFT split twiddles */
extern const uint16_t fe_fb_band[FE_CHANNELS + 2];          /* first bin of each band, from FE_FB_START */
extern const uint16_t fe_fb_weight[FE_FB_BINS];
#if FE_FB_UNWEIGHTS
extern const uint16_t fe_fb_unweight[FE_FB_BINS];
#endif
extern const int16_t fe_pcan_lut[2 + 3 * 31];
extern const uint16_t fe_log_lut[130];

#endif /* FE_CONFIG_H */
"""
    )
    w = t["window"]
    src = [
        tag,
        '#include "fe_config.h"\n\n',
        _c_array("uint32_t", "fe_window_coef", _pack(zip(w[0::2], w[1::2], strict=False)), 6),
        _c_array(dest_t, "fe_fft_dest", t["dest"], 16),
        _c_array("uint32_t", "fe_fft_twiddle", _pack(stage_tw), 6),
        _c_array("uint32_t", "fe_fft_super", _pack(t["super"]), 6),
        _c_array("uint16_t", "fe_fb_band", t["fb_bounds"], 16),
        _c_array("uint16_t", "fe_fb_weight", t["fb_weights"], 16),
    ]
    if t["fb_unweights"] is not None:
        src.append("#if FE_FB_UNWEIGHTS\n" + _c_array("uint16_t", "fe_fb_unweight", t["fb_unweights"], 16) + "#endif\n")
    src += [_c_array("int16_t", "fe_pcan_lut", t["pcan_lut"], 12), _c_array("uint16_t", "fe_log_lut", t["log_lut"], 16)]
    return header, "\n".join(src)


def write_tables(cfg: FrontendConfig, out_dir, compact: bool = True) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header, source = render_tables(cfg, compact)
    (out / "fe_config.h").write_text(header)
    (out / "fe_tables.c").write_text(source)
    return out


# ---------------------------------------------------------------------------------------------
# Host build and binding.


def source_hash() -> str:
    """Hash of everything that defines the features (the C, and this module's table code): a
    Snakemake param for the features rule, so an edit to either recomputes the features."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    for name in SOURCES + HEADERS:
        h.update((SOURCE_DIR / name).read_bytes())
    return h.hexdigest()[:16]


def build_root() -> Path:
    return Path(os.environ.get("TINYMIGHTY_BUILD_DIR", ROOT / "build")) / "micro_frontend"


def _sources_missing() -> list[str]:
    return [n for n in SOURCES + HEADERS if not (SOURCE_DIR / n).is_file()]


def build_library(
    cfg: FrontendConfig, cc: str = "gcc", extra_cflags: tuple[str, ...] = (), compact: bool = True
) -> Path:
    """Builds (or finds) the shared library for cfg; returns its path."""
    missing = _sources_missing()
    if missing:
        raise FileNotFoundError(
            f"micro frontend C sources missing from {SOURCE_DIR}: {missing} "
            f"(the package must run from a checkout that has firmware/)"
        )
    header, source = render_tables(cfg, compact)
    flags = (*HOST_CFLAGS, *extra_cflags)
    h = hashlib.sha256()
    for name in SOURCES + HEADERS:
        h.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes() + b"\0")
    h.update(header.encode() + source.encode() + repr((cc, flags)).encode())
    out_dir = build_root() / h.hexdigest()[:20]
    lib = out_dir / "libfe.so"
    if lib.is_file():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix="tmp-") as tmp:
        write_tables(cfg, tmp, compact)
        tmp_lib = Path(tmp) / "libfe.so"
        cmd = [
            cc,
            *flags,
            f"-I{tmp}",
            f"-I{SOURCE_DIR}",
            *(str(SOURCE_DIR / n) for n in SOURCES),
            str(Path(tmp) / "fe_tables.c"),
            "-o",
            str(tmp_lib),
            "-lm",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"micro frontend host build failed:\n{' '.join(cmd)}\n{proc.stderr}")
        for name in ("fe_config.h", "fe_tables.c"):
            os.replace(Path(tmp) / name, out_dir / name)
        os.replace(tmp_lib, lib)  # atomic: a concurrent build of the same hash wrote the same bytes
    return lib


_I16P = np.ctypeslib.ndpointer(np.int16, flags="C_CONTIGUOUS")
_U16P = np.ctypeslib.ndpointer(np.uint16, flags="C_CONTIGUOUS")
_I8P = np.ctypeslib.ndpointer(np.int8, flags="C_CONTIGUOUS")
_U32P = np.ctypeslib.ndpointer(np.uint32, flags="C_CONTIGUOUS")


class MicroFrontend:
    """The C frontend for one config.  All arrays are numpy; every call gets a fresh fe_state, so
    calls from several threads do not interfere."""

    def __init__(self, cfg: FrontendConfig, compact: bool = True, extra_cflags: tuple[str, ...] = ()):
        self.cfg = cfg
        self.path = build_library(cfg, compact=compact, extra_cflags=extra_cflags)
        lib = ctypes.CDLL(str(self.path))
        lib.fe_host_config.restype = ctypes.c_char_p
        lib.fe_host_clips.argtypes = [_U32P, _I16P, ctypes.c_size_t, ctypes.c_size_t, _U16P]
        lib.fe_host_clips.restype = ctypes.c_int
        lib.fe_host_stream.argtypes = [_U32P, _I16P, ctypes.c_size_t, ctypes.c_size_t, _U16P, ctypes.c_size_t]
        lib.fe_host_stream.restype = ctypes.c_size_t
        lib.fe_host_quantize.argtypes = [_U16P, ctypes.c_size_t, _I8P, ctypes.c_float, ctypes.c_int32]
        lib.fe_host_quantize.restype = None
        lib.fe_host_state_bytes.restype = ctypes.c_size_t
        got = lib.fe_host_config().decode()
        if got != config_hash(cfg):
            raise RuntimeError(f"{self.path} was built for config {got}, not {config_hash(cfg)}")
        self._lib = lib
        self.state_bytes = int(lib.fe_host_state_bytes())

    def _state(self) -> np.ndarray:
        return np.zeros((self.state_bytes + 3) // 4, np.uint32)

    def clips(self, pcm) -> np.ndarray:
        """Per-clip mode: (N, n) int16 -> (N, frames, channels) uint16.  Each clip starts from a
        reset state; a clip shorter than clip_ms is zero-padded (longer: cut), as fit_length does."""
        x = np.ascontiguousarray(pcm, dtype=np.int16)
        if x.ndim == 1:
            x = x[None]
        out = np.zeros((len(x), self.cfg.frames, self.cfg.channels), np.uint16)
        if len(x):
            self._lib.fe_host_clips(self._state(), x, len(x), x.shape[1], out)
        return out

    def stream(self, pcm) -> np.ndarray:
        """Streaming mode: one recording, fed one stride at a time with the state carried across
        it; (n,) int16 -> (frames, channels) uint16, the op's output for the whole recording."""
        x = np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)
        w, s = self.cfg.window, self.cfg.stride
        frames = 0 if len(x) < w else 1 + (len(x) - w) // s
        out = np.zeros((frames, self.cfg.channels), np.uint16)
        got = self._lib.fe_host_stream(self._state(), x, len(x), s, out, frames) if len(x) else 0
        if got != frames:
            raise RuntimeError(f"micro frontend streamed {got} columns, expected {frames}")
        return out

    def quantize(self, columns, scale: float, zero_point: int) -> np.ndarray:
        """uint16 columns -> int8 model input: npio.quantize_input(columns * 10/256, scale, zp)."""
        x = np.ascontiguousarray(columns, dtype=np.uint16)
        if x.size % self.cfg.channels:
            raise ValueError(f"{x.shape} is not a whole number of {self.cfg.channels}-channel columns")
        out = np.empty(x.shape, np.int8)
        self._lib.fe_host_quantize(
            x.reshape(-1), x.size // self.cfg.channels, out.reshape(-1), float(np.float32(scale)), int(zero_point)
        )
        return out


@lru_cache(maxsize=8)
def frontend(cfg: FrontendConfig) -> MicroFrontend:
    return MicroFrontend(cfg)


def pcm16(batch: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1) -> int16, exactly as features.py converts it for the op."""
    return np.clip(np.round(np.asarray(batch, np.float32) * 32768.0), -32768, 32767).astype(np.int16)


def extract(batch: np.ndarray, features_cfg) -> np.ndarray:
    """(N, samples) float audio -> (N, frames, channels) float32: the C frontend's columns * 10/256,
    equal bit for bit to features.py's TF-op path."""
    fe = frontend(FrontendConfig.from_features(features_cfg))
    return fe.clips(pcm16(batch)).astype(np.float32) * np.float32(OUT_SCALE)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Write fe_config.h and fe_tables.c for a features config.")
    ap.add_argument("out_dir", type=Path)
    for field, default in asdict(FrontendConfig()).items():
        ap.add_argument("--" + field.replace("_", "-"), type=type(default), default=default)
    args = ap.parse_args()
    cfg = FrontendConfig(**{f: getattr(args, f) for f in asdict(FrontendConfig())})
    print(write_tables(cfg, args.out_dir))
