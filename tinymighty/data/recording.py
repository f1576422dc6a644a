"""The streaming test: one long recording of background noise with keywords and unknown words at known times.

Only test-split clips are placed (their speakers are in no other split), so a model never heard these voices
say these words. Each placed clip is the clip as the test split holds it (from its offset, fitted to clip_ms),
added to background noise whose level changes every few seconds. The placement list, kept beside the WAV,
says where every clip starts and ends, its word, and whether it is a keyword: the ground truth the
recognizer's events are scored against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .audio import fit_length, read_wav, write_wav
from .prepare import SILENCE, UNKNOWN

LEAD_IN_S = 1.5  # noise only at the start: the network's first window fills
TAIL_S = 2.0  # noise only after the last clip: its detection has time to happen
GAP_S = (0.6, 1.6)  # noise between two clips, uniform
KEYWORD_SHARE = 0.6  # the rest are unknown words
NOISE_SEGMENT_S = 5.0  # the background level changes this often


def make_recording(
    index: dict,
    out_wav,
    seconds: float,
    sample_rate: int,
    clip_ms: int,
    stride: int,
    seed: int,
    background_volume: float = 0.1,
) -> dict:
    """Writes the recording (mono 16-bit WAV; its length a whole number of `stride` samples) and returns
    its description: sample_rate, samples, seconds and the placements (start_s, end_s, label, keyword, file)."""
    data_dir = Path(index["data_dir"])
    entries = [e for e in index["splits"]["testing"] if e["file"]]
    keywords = [e for e in entries if e["label"] not in (SILENCE, UNKNOWN)]
    unknown = [e for e in entries if e["label"] == UNKNOWN]
    if not keywords:
        raise InputError(f"the test split of {data_dir} holds no keyword clips to place in the streaming recording")
    n = int(seconds * sample_rate) // stride * stride
    clip_n = sample_rate * clip_ms // 1000
    if n < int((LEAD_IN_S + TAIL_S) * sample_rate) + clip_n:
        raise InputError(
            f"a {seconds:g} s streaming recording has no room for a clip: make it at least "
            f"{LEAD_IN_S + TAIL_S + clip_ms / 1000:g} s"
        )
    rng = np.random.default_rng([seed, 10])
    x = _background(index, n, sample_rate, rng, background_volume)
    pools = {True: list(rng.permutation(len(keywords))), False: list(rng.permutation(len(unknown)))}
    placements = []
    t = int(LEAD_IN_S * sample_rate)
    while t + clip_n + int(TAIL_S * sample_rate) <= n:
        is_kw = not unknown or rng.uniform() < KEYWORD_SHARE
        source = keywords if is_kw else unknown
        if not pools[is_kw]:
            pools[is_kw] = list(rng.permutation(len(source)))
        e = source[pools[is_kw].pop()]
        clip = fit_length(read_wav(data_dir / e["file"], sample_rate)[e.get("offset", 0) :], clip_n)
        x[t : t + clip_n] += clip
        placements.append(
            {
                "start_s": t / sample_rate,
                "end_s": (t + clip_n) / sample_rate,
                "label": e["label"],
                "keyword": is_kw,
                "file": e["file"],
            }
        )
        t += clip_n + int(rng.uniform(*GAP_S) * sample_rate)
    write_wav(out_wav, np.clip(x, -1.0, 1.0), sample_rate)
    return {
        "sample_rate": sample_rate,
        "samples": n,
        "seconds": n / sample_rate,
        "seed": seed,
        "background_volume": background_volume,
        "keywords": sum(p["keyword"] for p in placements),
        "unknown_words": sum(not p["keyword"] for p in placements),
        "placements": placements,
    }


def _background(index, n, sample_rate, rng, volume) -> np.ndarray:
    """Background noise from the dataset's noise recordings, its source and level changing every segment."""
    data_dir = Path(index["data_dir"])
    noise = [read_wav(data_dir / b, sample_rate) for b in index.get("background") or []]
    x = np.zeros(n, np.float64)
    if not noise or volume <= 0:
        return x
    seg = int(NOISE_SEGMENT_S * sample_rate)
    for start in range(0, n, seg):
        src = noise[int(rng.integers(len(noise)))]
        at = int(rng.integers(0, max(1, len(src) - seg)))
        part = np.resize(src[at : at + seg], seg)[: n - start]
        x[start : start + len(part)] = rng.uniform(0.2, 1.0) * volume * part
    return x


def read_pcm16(path, sample_rate: int) -> np.ndarray:
    """A mono 16-bit WAV's samples as int16, exactly as written (the device gets these bytes)."""
    audio = read_wav(path, sample_rate)
    return np.round(audio.astype(np.float64) * 32768.0).astype(np.int16)
