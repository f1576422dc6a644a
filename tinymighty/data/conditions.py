"""Recording conditions: turn a clean synthetic word into a 1 s clip that sounds recorded.

A synthesiser says a word in digital silence, at a fixed level, in no room. A microphone never
hears that. `apply(speech, seed)` places the word in one second the way a recording would:

    speech  -> speed (resampling)  -> tempo / pitch (sox)  -> level
            -> room (synthetic impulse response)  -> placed anywhere in the second
            -> background noise at an SNR  -> gain  -> noise floor  -> int16

Every random choice comes from `seed`, each stage from its own stream, so the same seed always
gives the same bytes, and switching one stage off in a `Profile` leaves what the others drew
unchanged (the tests rely on that to measure each stage on its own).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.signal import butter, fftconvolve, lfilter, resample_poly

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # one second, as in Speech Commands
PEAK_LIMIT = 0.9


# --------------------------------------------------------------------------- noises


def _shaped_noise(rng: np.random.Generator, n: int, exponent: float, band=(20.0, 8000.0)) -> np.ndarray:
    """Unit-RMS Gaussian noise with power spectrum ~ 1/f**exponent inside band (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    gain = np.zeros_like(f)
    inside = (f >= band[0]) & (f <= band[1])
    gain[inside] = f[inside] ** (-exponent / 2)
    x = np.fft.irfft(spectrum * gain, n)
    return x / np.sqrt(np.mean(x**2))


def _slow_envelope(rng: np.random.Generator, n: int, rate_hz: float, depth: float) -> np.ndarray:
    """Random smooth amplitude envelope around 1, for sources that wobble (water, fans)."""
    knots = rng.uniform(1 - depth, 1 + depth, int(n / SAMPLE_RATE * rate_hz) + 2)
    return np.interp(np.arange(n), np.linspace(0, n, len(knots)), knots)


def _hum(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    mains = rng.choice([50.0, 60.0])
    tone = sum(np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 8))
    return tone + 0.2 * _shaped_noise(rng, n, 1.0)  # a transformer hums over some room noise


# The long noise recordings of <root>/_background_noise_/ (same generators, same bytes as before).
NOISES = {
    "white_noise": lambda rng, n: _shaped_noise(rng, n, 0.0),
    "pink_noise": lambda rng, n: _shaped_noise(rng, n, 1.0),
    "brown_noise": lambda rng, n: _shaped_noise(rng, n, 2.0),
    "mains_hum": _hum,
    # Water from a tap: hissy mid/high band, fluctuating quickly.
    "running_tap": lambda rng, n: _shaped_noise(rng, n, 0.5, (400.0, 6000.0)) * _slow_envelope(rng, n, 12.0, 0.4),
    # A fan: rumbling low band, slowly breathing.
    "fan": lambda rng, n: _shaped_noise(rng, n, 1.0, (40.0, 1200.0)) * _slow_envelope(rng, n, 1.0, 0.2),
}

# What can be heard behind a word: the noises above, plus noise with speech's spectrum and
# syllable-rate (~4 Hz) modulation, the nearest thing to other people talking that costs no synthesis.
BACKGROUNDS = {
    **NOISES,
    "speech_shaped": lambda rng, n: _shaped_noise(rng, n, 1.0, (100.0, 4000.0)) * _slow_envelope(rng, n, 4.0, 0.8),
}


def background(kind: str, rng: np.random.Generator, n: int = CLIP_SAMPLES) -> np.ndarray:
    """n samples of unit-RMS background noise of one kind."""
    x = BACKGROUNDS[kind](rng, n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


# --------------------------------------------------------------------------- building blocks


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def dbfs(x: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale sine is -3 dBFS) of floats in [-1, 1)."""
    return 20 * np.log10(rms(x) + 1e-20)


def resample_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play x `factor` (to 1/100) times faster by resampling: shorter, higher pitch and formants."""
    ratio = Fraction(round(factor * 100), 100)
    if ratio == 1:
        return x
    return resample_poly(x, ratio.denominator, ratio.numerator)


def run_sox(x: np.ndarray, *effects: str, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Run mono float samples through sox effects (e.g. "tempo", "-s", "1.1").

    Raw 32-bit float in and out, and -D (no dither), so the result is exactly reproducible.
    """
    exe = shutil.which("sox")
    if exe is None:
        raise RuntimeError("sox was not found on PATH; install the Debian package 'sox'")
    raw = ["-t", "f32", "-e", "floating-point", "-r", str(rate), "-c", "1"]
    proc = subprocess.run(
        [exe, "-D", "-V1", *raw, "-", *raw, "-", *effects],
        input=np.asarray(x, dtype="<f4").tobytes(),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"sox {' '.join(effects)} failed: {proc.stderr.decode(errors='replace')}")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float64)


def tempo_pitch(x: np.ndarray, tempo: float, semitones: float) -> np.ndarray:
    """Change duration (tempo > 1 is faster) and pitch (in semitones) independently, with sox."""
    effects = []
    if tempo != 1.0:
        effects += ["tempo", "-s", f"{tempo:.4f}"]
    if semitones != 0.0:
        effects += ["pitch", f"{100 * semitones:.1f}"]
    return run_sox(x, *effects) if effects else x


def room_impulse_response(rng: np.random.Generator, rt60: float, drr_db: float) -> np.ndarray:
    """A synthetic room: a direct path of 1, a few early echoes, then a noise tail decaying 60 dB in rt60 s.

    The tail is low-passed (walls and air absorb highs) and scaled so the direct path carries
    drr_db more energy than all the reflections together (the direct-to-reverberant ratio).
    """
    n = max(int(rt60 * SAMPLE_RATE), 2)
    decay = 10 ** (-3.0 * np.arange(n) / (rt60 * SAMPLE_RATE))  # amplitude at -60 dB after rt60
    first = int(rng.uniform(0.002, 0.010) * SAMPLE_RATE)  # the nearest wall's echo arrives after this
    tail = rng.normal(size=n) * decay
    tail[: min(first, n)] = 0.0
    echoes = rng.integers(min(first, n - 1), min(first + int(0.03 * SAMPLE_RATE), n), size=6)
    tail[echoes] += rng.uniform(-3.0, 3.0, size=6) * decay[echoes]
    b, a = butter(1, rng.uniform(2500.0, 6000.0) / (SAMPLE_RATE / 2))
    tail = lfilter(b, a, tail)
    tail *= np.sqrt(10 ** (-drr_db / 10) / (np.sum(tail**2) + 1e-20))
    tail[0] = 1.0
    return tail


def place(speech: np.ndarray, offset: int, n: int = CLIP_SAMPLES) -> np.ndarray:
    """speech (and whatever of it runs past the end is cut) in n samples of silence, starting at offset."""
    clip = np.zeros(n)
    part = speech[: max(n - offset, 0)]
    clip[offset : offset + len(part)] = part
    return clip


# --------------------------------------------------------------------------- drawing conditions


@dataclass(frozen=True)
class Profile:
    """The ranges conditions are drawn from; `p_*` is the chance that a stage is applied at all."""

    level_dbfs: float = -20.0  # RMS of the dry word, before gain
    gain_db: tuple[float, float] = (-6.0, 6.0)  # microphone / speaker distance
    # Self-noise of microphone and converter; from -90 dBFS, about one LSB of int16: nearly digital silence.
    floor_dbfs: tuple[float, float] = (-90.0, -55.0)
    p_background: float = 0.6
    snr_db: tuple[float, float] = (10.0, 40.0)  # dry word RMS over background RMS
    backgrounds: tuple[str, ...] = tuple(BACKGROUNDS)
    p_room: float = 0.3
    rt60_s: tuple[float, float] = (0.1, 0.5)
    drr_db: tuple[float, float] = (5.0, 15.0)
    p_speed: float = 0.5
    speed: tuple[float, float] = (0.9, 1.1)  # resampling factor (Kaldi-style speed perturbation)
    p_sox: float = 0.25
    tempo: tuple[float, float] = (0.85, 1.15)  # sox tempo: duration only
    semitones: tuple[float, float] = (-2.0, 2.0)  # sox pitch: pitch only


DEFAULT = Profile()
# Only what every microphone adds: a noise floor, nothing else. For tests and plain data.
CLEAN = Profile(gain_db=(0.0, 0.0), floor_dbfs=(-70.0, -70.0), p_background=0.0, p_room=0.0, p_speed=0.0, p_sox=0.0)


@dataclass(frozen=True)
class Conditions:
    """What was drawn for one clip; None marks a stage that was not applied. Kept for provenance."""

    speed: float | None
    tempo: float | None
    semitones: float | None
    rt60_s: float | None
    drr_db: float | None
    background: str | None
    snr_db: float | None
    gain_db: float
    floor_dbfs: float
    offset: int  # first sample of the word in the clip
    length: int  # samples of the (dry) word, after speed and tempo changes
    truncated: bool  # the word was longer than a second and was cut


# One random stream per stage: toggling a stage changes nothing that the others draw.
_STAGES = ("speed", "sox", "room", "place", "background", "gain", "floor")


def _streams(seed: int) -> dict[str, np.random.Generator]:
    return {name: np.random.default_rng([seed, i]) for i, name in enumerate(_STAGES)}


def _draw(rng: np.random.Generator, p: float, *ranges: tuple[float, float], digits: int = 3) -> tuple | None:
    """Values drawn uniformly from ranges, or None with chance 1 - p. Always draws the coin and every
    value, so a stage's stream advances the same way whatever p is."""
    on = rng.random() < p
    values = tuple(round(float(rng.uniform(*r)), digits) for r in ranges)
    return values if on else None


def apply(speech: np.ndarray, seed: int, profile: Profile = DEFAULT) -> tuple[np.ndarray, Conditions]:
    """One second of int16 audio holding `speech` (int16 or float at 16 kHz) as if recorded; and what was done."""
    rng = _streams(seed)
    x = np.asarray(speech, dtype=np.float64)
    if np.issubdtype(np.asarray(speech).dtype, np.integer):
        x = x / 32768.0

    speed = _draw(rng["speed"], profile.p_speed, profile.speed, digits=2)
    if speed:
        x = resample_speed(x, *speed)
    sox = _draw(rng["sox"], profile.p_sox, profile.tempo, profile.semitones)
    if sox:
        x = tempo_pitch(x, *sox)
    x *= 10 ** (profile.level_dbfs / 20) / (rms(x) + 1e-12)
    length = len(x)

    room = _draw(rng["room"], profile.p_room, profile.rt60_s, profile.drr_db)
    if room:
        x = fftconvolve(x, room_impulse_response(rng["room"], *room))

    offset = int(rng["place"].integers(0, max(CLIP_SAMPLES - length, 0) + 1))  # the word fits, its echo may not
    clip = place(x, offset)

    r = rng["background"]
    kind = str(r.choice(profile.backgrounds))
    snr = _draw(r, profile.p_background, profile.snr_db)
    if snr:
        clip += background(kind, r) * 10 ** ((profile.level_dbfs - snr[0]) / 20)

    (gain_db,) = _draw(rng["gain"], 1.0, profile.gain_db)
    clip *= 10 ** (gain_db / 20)
    clip *= min(1.0, PEAK_LIMIT / (np.abs(clip).max() + 1e-12))  # an automatic gain control, not clipping

    (floor_dbfs,) = _draw(rng["floor"], 1.0, profile.floor_dbfs)
    clip += rng["floor"].normal(0.0, 10 ** (floor_dbfs / 20), CLIP_SAMPLES)

    pcm = np.clip(np.round(clip * 32768.0), -32768, 32767).astype(np.int16)
    conditions = Conditions(
        speed=speed and speed[0],
        tempo=sox and sox[0],
        semitones=sox and sox[1],
        rt60_s=room and room[0],
        drr_db=room and room[1],
        background=kind if snr else None,
        snr_db=snr and snr[0],
        gain_db=gain_db,
        floor_dbfs=floor_dbfs,
        offset=offset,
        length=length,
        truncated=length > CLIP_SAMPLES,
    )
    return pcm, conditions
