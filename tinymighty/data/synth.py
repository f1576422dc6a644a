"""An offline Speech Commands look-alike: words spoken by espeak-ng voices, plus synthetic background noise."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import math
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from .audio import write_wav
from .layout import BACKGROUND_DIR, _check_target, _remove, _replace_dir
from .splits import write_split_lists

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # every clip is exactly one second, as in Speech Commands

DEFAULT_KEYWORDS = ("yes", "no")
DEFAULT_UNKNOWN_WORDS = ("up", "down", "left", "right", "on", "off", "stop", "go", "zero", "one", "two", "three")

# espeak-ng's own (non-MBROLA) English accents; MBROLA voices need extra binaries and data.
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc")
# "fast" is espeak-ng's speed self-test, not a voice.
EXCLUDED_VARIANTS = frozenset({"fast"})
PITCH_RANGE = (15, 85)  # extremes of espeak's 0..99 sound like effects rather than people
SPEED_RANGE = (145, 215)  # words per minute; below ~130 long words no longer fit in 1 s
# Punctuation changes espeak's intonation (statement, exclamation, question, continuation),
# which is the cheapest source of prosodic variety within one speaker.
PROSODY = ("{}", "{}.", "{}!", "{}?", "{},")
TARGET_RMS_DBFS = -20.0
GAIN_JITTER_DB = 4.0
PEAK_LIMIT = 0.9
NOISE_FLOOR_DBFS = -70.0  # real microphones never record digital zero; the model should not learn it
REPEAT_PROBABILITY = 0.3  # chance that a speaker says a word a second time (_nohash_1)


# --------------------------------------------------------------------------- wav io


def _parse_espeak_wav(data: bytes) -> tuple[np.ndarray, int]:
    # espeak-ng --stdout cannot seek back, so its RIFF/data sizes are placeholders (0x7fff...);
    # the wave module would trust them, so locate the chunks by hand.
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RuntimeError("espeak-ng did not produce a WAV stream")
    rate = int.from_bytes(data[24:28], "little")
    start = data.find(b"data", 12) + 8
    pcm = np.frombuffer(data[start : start + (len(data) - start) // 2 * 2], dtype="<i2")
    return pcm.astype(np.float64) / 32768.0, rate


# --------------------------------------------------------------------------- espeak-ng


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError(
            "espeak-ng was not found on PATH; it is needed to synthesise the offline dataset. "
            "Install the Debian/Ubuntu package 'espeak-ng' (sudo apt-get install espeak-ng), "
            "or use a real Speech Commands copy instead."
        )
    return exe


def _espeak_voices(exe: str) -> tuple[list[str], list[str], str]:
    """Installed accents (of ACCENTS), variant names and the espeak-ng version string."""

    def run(*args):
        return subprocess.run([exe, *args], capture_output=True, text=True, check=True).stdout

    languages = {line.split()[1] for line in run("--voices=en").splitlines()[1:] if line.split()}
    accents = [a for a in ACCENTS if a in languages]
    # A variant's usable name is its file name after "!v/"; names containing spaces cannot be
    # passed after "+", and the regex skips them because the line would not end after \S+.
    variants = sorted(
        {m.group(1) for m in re.finditer(r"!v/(\S+)\s*$", run("--voices=variant"), re.M)} - EXCLUDED_VARIANTS
    )
    if not accents or not variants:
        raise RuntimeError(f"espeak-ng at {exe} lists no usable English voices/variants; reinstall 'espeak-ng'")
    return accents, variants, run("--version").strip()


@dataclass(frozen=True)
class Voice:
    accent: str
    variant: str
    pitch: int
    speed: int

    def speaker_id(self, seed: int) -> str:
        return hashlib.sha1(f"{seed}|{self.accent}+{self.variant}|p{self.pitch}|s{self.speed}".encode()).hexdigest()[:8]


@dataclass(frozen=True)
class ClipPlan:
    """Everything needed to render one clip, drawn up front so rendering order cannot matter."""

    path: str  # relative to the dataset root
    text: str
    voice: Voice
    offset_fraction: float
    gain_db: float
    noise_seed: int


def _render_clip(exe: str, plan: ClipPlan, root: Path) -> bool:
    """Synthesise, trim, resample, level and place one clip; return True if it had to be cut to 1 s."""
    v = plan.voice
    cmd = [exe, "-v", f"{v.accent}+{v.variant}", "-p", str(v.pitch), "-s", str(v.speed), "--stdout", plan.text]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) < 100:
        raise RuntimeError(f"espeak-ng failed for {plan.path}: {' '.join(cmd)}\n{proc.stderr.decode(errors='replace')}")
    speech, rate = _parse_espeak_wav(proc.stdout)

    # espeak pads words with silence of voice-dependent length; cut it so the random offset
    # below, not the voice, decides where the word sits.
    loud = np.flatnonzero(np.abs(speech) > 0.02 * np.abs(speech).max(initial=0))
    if not loud.size:
        raise RuntimeError(f"espeak-ng produced silence for {plan.path}: {' '.join(cmd)}")
    margin = int(0.02 * rate)
    speech = speech[max(loud[0] - margin, 0) : loud[-1] + margin + 1]
    g = math.gcd(SAMPLE_RATE, rate)
    speech = resample_poly(speech, SAMPLE_RATE // g, rate // g)

    truncated = len(speech) > CLIP_SAMPLES
    speech = speech[:CLIP_SAMPLES]
    fade = min(len(speech) // 4, int(0.005 * SAMPLE_RATE))  # avoid clicks at the cut edges
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    speech[:fade] *= ramp
    speech[len(speech) - fade :] *= ramp[::-1]

    rms = np.sqrt(np.mean(speech**2)) + 1e-12
    speech *= 10 ** ((TARGET_RMS_DBFS + plan.gain_db) / 20) / rms
    speech *= min(1.0, PEAK_LIMIT / (np.abs(speech).max() + 1e-12))

    rng = np.random.default_rng(plan.noise_seed)
    clip = rng.normal(0.0, 10 ** (NOISE_FLOOR_DBFS / 20), CLIP_SAMPLES)
    offset = int(plan.offset_fraction * (CLIP_SAMPLES - len(speech)))
    clip[offset : offset + len(speech)] += speech
    write_wav(root / plan.path, clip)
    return truncated


def _draw_speakers(rng: np.random.Generator, n: int, accents, variants, seed: int) -> list[tuple[str, Voice]]:
    speakers, seen = [], set()
    while len(speakers) < n:
        voice = Voice(
            accent=accents[rng.integers(len(accents))],
            variant=variants[rng.integers(len(variants))],
            pitch=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
            speed=int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1)),
        )
        sid = voice.speaker_id(seed)
        if sid not in seen:  # one identity per speaker id, or splits and filenames would collide
            seen.add(sid)
            speakers.append((sid, voice))
    return speakers


def _plan_clips(word_counts: dict[str, int], seed: int, accents, variants) -> tuple[list[ClipPlan], int]:
    rng = np.random.default_rng(seed)
    # As in Speech Commands, one pool of people says all the words; a pool as large as the
    # biggest class guarantees enough distinct speakers even without repetitions.
    speakers = _draw_speakers(rng, max(word_counts.values()), accents, variants, seed)
    plans = []
    for word, count in word_counts.items():
        order = rng.permutation(len(speakers))
        made = 0
        for idx in order:
            sid, voice = speakers[idx]
            repeats = min(1 + int(rng.random() < REPEAT_PROBABILITY), count - made)
            for n in range(repeats):
                if n:  # nobody says a word exactly the same way twice
                    voice = Voice(
                        voice.accent,
                        voice.variant,
                        int(np.clip(voice.pitch + rng.integers(-4, 5), 0, 99)),
                        int(max(voice.speed + rng.integers(-8, 9), SPEED_RANGE[0])),
                    )
                plans.append(
                    ClipPlan(
                        path=f"{word}/{sid}_nohash_{n}.wav",
                        text=PROSODY[rng.integers(len(PROSODY))].format(word),
                        voice=voice,
                        offset_fraction=float(rng.random()),
                        gain_db=float(rng.uniform(-GAIN_JITTER_DB, GAIN_JITTER_DB)),
                        noise_seed=int(rng.integers(2**63)),
                    )
                )
            made += repeats
            if made == count:
                break
    return plans, len(speakers)


# --------------------------------------------------------------------------- background noise


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


def _write_noises(root: Path, count: int, seconds: float, seed: int) -> list[str]:
    out = root / BACKGROUND_DIR
    out.mkdir(parents=True, exist_ok=True)
    kinds = list(NOISES)
    names = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        name = kind if i < len(kinds) else f"{kind}_{i // len(kinds)}"
        rng = np.random.default_rng([seed, i])
        x = NOISES[kind](rng, int(seconds * SAMPLE_RATE))
        x *= 10 ** (TARGET_RMS_DBFS / 20) / (np.sqrt(np.mean(x**2)) + 1e-12)
        x *= min(1.0, PEAK_LIMIT / np.abs(x).max())
        write_wav(out / f"{name}.wav", x)
        names.append(f"{name}.wav")
    return names


# --------------------------------------------------------------------------- synthesis


def _check_words(words) -> None:
    for w in words:
        if not re.fullmatch(r"[a-z][a-z']*", w):
            raise ValueError(f"word {w!r} is not usable as a folder name and espeak text; use lower-case letters only")
    if len(set(words)) != len(words):
        raise ValueError(f"keywords and unknown words overlap or repeat: {list(words)}")


def synthesize(
    out_dir,
    keywords=DEFAULT_KEYWORDS,
    unknown_words=DEFAULT_UNKNOWN_WORDS,
    clips_per_keyword: int = 400,
    clips_per_unknown_word: int = 60,
    noise_clips: int = 6,
    noise_seconds: float = 30.0,
    seed: int = 0,
    jobs: int = 2,
    validation_percentage: float = 10,
    testing_percentage: float = 10,
    overwrite: bool = False,
    progress=print,
) -> dict:
    """Synthesise a Speech Commands v2 style dataset with espeak-ng into out_dir; return stats.

    Same arguments and espeak-ng version give byte-identical files, whatever `jobs` is.
    """
    exe = _espeak()
    keywords, unknown_words = tuple(keywords), tuple(unknown_words)
    _check_words(keywords + unknown_words)
    if clips_per_keyword < 1 or clips_per_unknown_word < 0 or noise_clips < 0 or jobs < 1:
        raise ValueError("clips_per_keyword and jobs must be >= 1; clips_per_unknown_word, noise_clips >= 0")
    if noise_clips and noise_seconds < 10:
        raise ValueError(f"noise_seconds={noise_seconds}: background noise must be at least 10 s long")
    say = progress or (lambda *_: None)
    started = time.monotonic()

    accents, variants, version = _espeak_voices(exe)
    counts = {w: clips_per_keyword for w in keywords}
    counts |= {w: clips_per_unknown_word for w in unknown_words if clips_per_unknown_word}
    plans, n_speakers = _plan_clips(counts, seed, accents, variants)

    out_dir = Path(out_dir)
    _check_target(out_dir, overwrite)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    _remove(tmp)  # leftovers of an interrupted run
    for word in counts:
        (tmp / word).mkdir(parents=True)

    truncated, total = 0, len(plans)
    every = max(1, min(100, total // 10))
    say(f"synthesize: {total} clips of {len(counts)} words by {n_speakers} speakers with espeak-ng, {jobs} jobs")
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            # Threads suffice: the work happens in espeak-ng subprocesses and in GIL-free numpy.
            for done, cut in enumerate(pool.map(lambda p: _render_clip(exe, p, tmp), plans), 1):
                truncated += cut
                if done % every == 0 or done == total:
                    say(f"synthesize: {done}/{total} clips")
        noises = _write_noises(tmp, noise_clips, noise_seconds, seed)
        splits = write_split_lists(tmp, validation_percentage, testing_percentage)
    except BaseException:
        _remove(tmp)
        raise

    # Provenance: enough to regenerate or audit the data; no timestamps so it stays reproducible.
    meta = {
        "generator": "tinymighty.dataset.synthesize",
        "espeak_ng": version,
        "seed": seed,
        "words": counts,
        "keywords": list(keywords),
        "unknown_words": list(unknown_words),
        "clips": {p.path: {"text": p.text, **asdict(p.voice)} for p in plans},
        "background_noise": noises,
    }
    (tmp / "synthesis.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    _replace_dir(tmp, out_dir)

    seconds = time.monotonic() - started
    stats = {
        "clips": total,
        "words": counts,
        "speakers": n_speakers,
        "splits": splits,
        "truncated_clips": truncated,
        "background_noise": len(noises),
        "seconds": round(seconds, 2),
        "clips_per_second": round(total / seconds, 1),
    }
    say(
        f"synthesize: wrote {total} clips ({splits['training']} train / {splits['validation']} val / "
        f"{splits['testing']} test), {n_speakers} speakers, {len(noises)} noise files, "
        f"{truncated} clips cut to 1 s, in {seconds:.1f} s ({stats['clips_per_second']} clips/s) -> {out_dir}"
    )
    return stats
