"""The default dataset: keywords and unknown words said by many synthetic speakers, recorded as a microphone would.

Speakers come from several synthesisers and voice families (`voices.py`): espeak-ng's English accents x
voice variants and festival's ked diphone voice, each speaker at its own pitch and speaking rate. Every
clip then gets realistic recording conditions (`conditions.py`): noise floor, background noise at an SNR,
gain, room reverberation, speed and pitch changes, the word anywhere in the second.

`synthesize` writes the training dataset (training, validation and test splits, by speaker, as Speech
Commands does); `synthesize_holdout` writes the held-out voices (by default festival's CMU voices, the
speakers flite also ships) as a separate Speech-Commands-format set whose every clip is a test clip. The
two never share a voice, so the held-out set cannot leak into training.

Everything is drawn from the seed up front; the same arguments and synthesiser versions give the same
bytes, whatever `jobs` is.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import conditions as C
from . import voices as V
from .audio import write_wav
from .layout import BACKGROUND_DIR, _check_target, _remove, _replace_dir
from .splits import write_split_lists

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # every clip is exactly one second, as in Speech Commands

DEFAULT_KEYWORDS = ("yes", "no")
# The other 33 words of Speech Commands v2, so that what a user may say next to the keywords is known ...
SPEECH_COMMANDS_WORDS = (
    "up", "down", "left", "right", "on", "off", "stop", "go",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "backward", "forward", "follow", "learn", "visual",
)  # fmt: skip
# ... short words that sound like the keywords, so that rejection is learnt where it is hard: each shares the
# keyword's vowel and differs by a consonant (yet, less, nose, note, snow) or by one missing (yeah). Closer
# pairs (guess, dress, yell, now, new, low) went out after measuring: TinyConv takes up to 9 of 10 held-out
# clips of each for a keyword whether or not it trains on them, and with them the held-out balanced accuracy
# was 78 % instead of 83 % (README, "How the default dataset generalises") ...
SOUND_ALIKES = ("yet", "yeah", "less", "nose", "note", "snow")
# ... and everyday words said to devices.
EVERYDAY_WORDS = ("okay", "please", "wait", "light", "play", "what")
DEFAULT_UNKNOWN_WORDS = SPEECH_COMMANDS_WORDS + SOUND_ALIKES + EVERYDAY_WORDS
# Share of the speakers from each voice family. festival-cmu is not here: it is the held-out family.
DEFAULT_FAMILIES = {"espeak-ng": 0.4, "festival-ked": 0.3, "festival-accented": 0.3}
DEFAULT_HOLDOUT = ("festival-cmu",)
PROFILES = {"realistic": C.DEFAULT, "clean": C.CLEAN}
REPEAT_PROBABILITY = 0.3  # chance that a speaker says a word a second time (_nohash_1)
NOISE_RMS_DBFS = -20.0
PEAK_LIMIT = 0.9


@dataclass(frozen=True)
class Clip:
    """One clip to make, drawn up front so that rendering order cannot matter."""

    path: str  # relative to the dataset root
    word: str
    voice: V.Voice
    seed: int  # the utterance (intonation, small pitch and rate changes)
    conditions_seed: int  # the recording conditions


# --------------------------------------------------------------------------- voices and speakers


def _check_words(words) -> None:
    for w in words:
        if not re.fullmatch(r"[a-z][a-z']*", w):
            raise ValueError(f"word {w!r} is not usable as a folder name and text to say; use lower-case letters only")
    if len(set(words)) != len(words):
        raise ValueError(f"keywords and unknown words overlap or repeat: {list(words)}")


def _families_of(term: str) -> list[str]:
    """The voice families a holdout entry (a family, a synthesiser, a voice or an espeak-ng accent) can match."""
    if term in V.FAMILIES:
        return [term]
    by_synth = [f for f, spec in V.FAMILIES.items() if spec.synth == term]
    if by_synth:
        return by_synth
    if term in V.FESTIVAL_VOICES:
        return [V.FESTIVAL_VOICES[term].family]
    return [f for f, spec in V.FAMILIES.items() if spec.synth == "espeak-ng"]


def voice_pools(
    families: Mapping[str, float], holdout: Sequence[str] = ()
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """(training pools, held-out pools): the installed voice names of each family, split by `holdout`.

    Training draws from `families` minus whatever `holdout` names; the held-out pools hold every installed
    voice that `holdout` names, whether or not its family is in `families`.
    """
    holdout = tuple(holdout or ())
    unknown = [f for f in families if f not in V.FAMILIES]
    if unknown:
        raise ValueError(f"unknown voice families {unknown}; known: {', '.join(V.FAMILIES)}")
    wanted = [f for f, w in families.items() if w > 0]
    held_families = sorted({f for term in holdout for f in _families_of(term)}, key=list(V.FAMILIES).index)
    catalogue = V.catalogue(tuple(dict.fromkeys(wanted + held_families)))
    train, held = {}, {}
    for family, names in catalogue.items():
        kept = tuple(n for n in names if not V.held_out(V.Voice(family, n), holdout))
        out = tuple(n for n in names if V.held_out(V.Voice(family, n), holdout))
        if family in wanted and kept:
            train[family] = kept
        if out:
            held[family] = out
    if wanted and not train:
        raise ValueError(f"data.holdout {list(holdout)} holds out every training voice of {wanted}; nothing is left")
    missing = [term for term in holdout if not any(V.held_out(V.Voice(f, n), [term]) for f in held for n in held[f])]
    if missing:
        raise ValueError(
            f"data.holdout {missing} names no installed voice; use a family ({', '.join(V.FAMILIES)}), "
            "a synthesiser (espeak-ng, festival), a festival voice or an espeak-ng accent"
        )
    return train, held


def _draw_speakers(
    rng: np.random.Generator, n: int, pools: Mapping[str, Sequence[str]], weights: Mapping[str, float], seed: int
) -> list[tuple[str, V.Voice]]:
    """n distinct speakers, each of a family drawn by weight, then a voice, pitch and rate within it."""
    families = [f for f in V.FAMILIES if f in pools]  # a fixed order: the config's key order cannot change the data
    p = np.asarray([weights[f] for f in families], dtype=np.float64)
    p /= p.sum()
    speakers, seen = [], set()
    while len(speakers) < n:
        family = families[int(rng.choice(len(families), p=p))]
        voice = V.draw_voice(rng, family, pools[family])
        sid = voice.speaker_id(seed)
        if sid not in seen:  # one identity per speaker id, or splits and file names would collide
            seen.add(sid)
            speakers.append((sid, voice))
    return speakers


def plan(word_counts: Mapping[str, int], speakers: Sequence[tuple[str, V.Voice]], rng) -> list[Clip]:
    """Who says what: as in Speech Commands, one pool of people says all the words, some of them twice."""
    clips = []
    for word, count in word_counts.items():
        made = 0
        for idx in rng.permutation(len(speakers)):
            sid, voice = speakers[idx]
            repeats = min(1 + int(rng.random() < REPEAT_PROBABILITY), count - made)
            for n in range(repeats):
                seeds = rng.integers(2**32, size=2)
                clips.append(Clip(f"{word}/{sid}_nohash_{n}.wav", word, voice, int(seeds[0]), int(seeds[1])))
            made += repeats
            if made == count:
                break
    return clips


# --------------------------------------------------------------------------- rendering


def _write_noises(root: Path, count: int, seconds: float, seed: int) -> list[str]:
    """The long noise recordings of <root>/_background_noise_/, for training augmentation and silence."""
    out = root / BACKGROUND_DIR
    out.mkdir(parents=True, exist_ok=True)
    kinds = list(C.NOISES)
    names = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        name = kind if i < len(kinds) else f"{kind}_{i // len(kinds)}"
        x = C.NOISES[kind](np.random.default_rng([seed, i]), int(seconds * SAMPLE_RATE))
        x *= 10 ** (NOISE_RMS_DBFS / 20) / (C.rms(x) + 1e-12)
        x *= min(1.0, PEAK_LIMIT / np.abs(x).max())
        write_wav(out / f"{name}.wav", x)
        names.append(f"{name}.wav")
    return names


def _render(clips: Sequence[Clip], root: Path, profile: C.Profile, jobs: int, say, what: str) -> dict[str, dict]:
    """Say, condition and write every clip; return what was drawn for each, by path."""

    def finish(i, speech):
        clip = clips[i]
        pcm, drawn = C.apply(speech, clip.conditions_seed, profile)
        write_wav(root / clip.path, pcm.astype(np.float64) / 32768.0)
        return drawn

    total, done, started = len(clips), 0, time.monotonic()
    every = max(1, total // 20)
    out = {}
    for i, drawn in V.render_many([(c.voice, c.word, c.seed) for c in clips], jobs=jobs, then=finish):
        out[clips[i].path] = asdict(drawn)
        done += 1
        if done % every == 0 or done == total:
            spent = time.monotonic() - started
            eta = spent / done * (total - done)
            say(f"{what}: {done}/{total} clips, {done / spent:.0f} clips/s, {eta:.0f} s left")
    return out


def _summary(clips: Sequence[Clip]) -> dict:
    return {
        "clips_by_family": dict(sorted(Counter(c.voice.family for c in clips).items())),
        "clips_by_voice": dict(sorted(Counter(c.voice.name.split("+")[0] for c in clips).items())),
    }


def _build(
    out_dir,
    word_counts: dict[str, int],
    pools,
    weights,
    n_speakers: int,
    rng,
    seed: int,
    profile: str,
    jobs: int,
    overwrite: bool,
    say,
    what: str,
    finish_tree,
    meta: dict,
) -> tuple[dict, list[Clip]]:
    if profile not in PROFILES:
        raise ValueError(f"conditions {profile!r} is not one of {', '.join(PROFILES)}")
    if jobs < 1:
        raise ValueError("jobs must be >= 1")
    speakers = _draw_speakers(rng, n_speakers, pools, weights, seed)
    clips = plan(word_counts, speakers, rng)

    out_dir = Path(out_dir)
    _check_target(out_dir, overwrite)
    tmp = out_dir.with_name(out_dir.name + ".partial")
    _remove(tmp)  # leftovers of an interrupted run
    for word in word_counts:
        (tmp / word).mkdir(parents=True)
    started = time.monotonic()
    summary = _summary(clips)
    say(
        f"{what}: {len(clips)} clips of {len(word_counts)} words by {len(speakers)} speakers "
        f"({', '.join(f'{k} {v}' for k, v in summary['clips_by_family'].items())} clips), "
        f"{profile} conditions, {jobs} jobs"
    )
    try:
        drawn = _render(clips, tmp, PROFILES[profile], jobs, say, what)
        extra = finish_tree(tmp)
    except BaseException:
        _remove(tmp)
        raise
    seconds = time.monotonic() - started
    # Provenance: enough to regenerate or audit the data; no timestamps, so it stays byte-reproducible.
    meta = {
        **meta,
        "generator": f"tinymighty.data.synth.{what}",
        "synthesisers": V.versions(),
        "seed": seed,
        "words": word_counts,
        "conditions": profile,
        **summary,
        **{k: v for k, v in extra.items() if k != "stats"},
        "clips": {
            c.path: {"voice": asdict(c.voice), "seed": c.seed, "conditions": drawn[c.path]}
            for c in sorted(clips, key=lambda c: c.path)
        },
    }
    (tmp / "synthesis.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    _replace_dir(tmp, out_dir)
    stats = {
        "clips": len(clips),
        "words": word_counts,
        "speakers": len(speakers),
        **summary,
        "truncated_clips": sum(d["truncated"] for d in drawn.values()),
        "seconds": round(seconds, 2),
        "clips_per_second": round(len(clips) / max(seconds, 1e-9), 1),
        **extra.get("stats", {}),
    }
    return stats, clips


def synthesize(
    out_dir,
    keywords=DEFAULT_KEYWORDS,
    unknown_words=DEFAULT_UNKNOWN_WORDS,
    clips_per_keyword: int = 400,
    clips_per_unknown_word: int = 60,
    noise_clips: int = 6,
    noise_seconds: float = 30.0,
    families: Mapping[str, float] | None = None,
    holdout: Sequence[str] = DEFAULT_HOLDOUT,
    conditions: str = "realistic",
    seed: int = 0,
    jobs: int = 2,
    validation_percentage: float = 10,
    testing_percentage: float = 10,
    overwrite: bool = False,
    progress=print,
) -> dict:
    """Synthesise a Speech Commands v2 style training dataset into out_dir; return its stats.

    families: share of speakers per voice family (default espeak-ng 0.6, festival-ked 0.4); every voice
    that `holdout` names is left out. Same arguments and synthesiser versions give byte-identical files,
    whatever `jobs` is.
    """
    families = dict(DEFAULT_FAMILIES if families is None else families)
    keywords, unknown_words = tuple(keywords), tuple(unknown_words)
    _check_words(keywords + unknown_words)
    if clips_per_keyword < 1 or clips_per_unknown_word < 0 or noise_clips < 0:
        raise ValueError("clips_per_keyword must be >= 1; clips_per_unknown_word, noise_clips >= 0")
    if noise_clips and noise_seconds < 10:
        raise ValueError(f"noise_seconds={noise_seconds}: background noise must be at least 10 s long")
    say = progress or (lambda *_: None)
    pools, _ = voice_pools(families, holdout)
    counts = {w: clips_per_keyword for w in keywords}
    counts |= {w: clips_per_unknown_word for w in unknown_words if clips_per_unknown_word}

    def finish_tree(tmp: Path) -> dict:
        noises = _write_noises(tmp, noise_clips, noise_seconds, seed)
        splits = write_split_lists(tmp, validation_percentage, testing_percentage)
        return {"background_noise": noises, "stats": {"splits": splits, "background_noise": len(noises)}}

    # As in Speech Commands, a pool as large as the biggest class gives enough distinct speakers even
    # without repetitions.
    stats, _ = _build(
        out_dir,
        counts,
        pools,
        families,
        max(counts.values()),
        np.random.default_rng(seed),
        seed,
        conditions,
        jobs,
        overwrite,
        say,
        "synthesize",
        finish_tree,
        {
            "keywords": list(keywords),
            "unknown_words": list(unknown_words),
            "families": families,
            "held_out": list(holdout or ()),
        },
    )
    s = stats["splits"]
    say(
        f"synthesize: wrote {stats['clips']} clips ({s['training']} train / {s['validation']} val / "
        f"{s['testing']} test), {stats['speakers']} speakers, {stats['background_noise']} noise files, "
        f"{stats['truncated_clips']} clips cut to 1 s, in {stats['seconds']:.1f} s "
        f"({stats['clips_per_second']} clips/s) -> {out_dir}"
    )
    return stats


def synthesize_holdout(
    out_dir,
    holdout: Sequence[str] = DEFAULT_HOLDOUT,
    keywords=DEFAULT_KEYWORDS,
    unknown_words=DEFAULT_UNKNOWN_WORDS,
    clips_per_keyword: int = 200,
    clips_per_unknown_word: int = 8,
    conditions: str = "realistic",
    seed: int = 0,
    jobs: int = 2,
    overwrite: bool = False,
    progress=print,
) -> dict:
    """The held-out voices saying the same words, as a Speech-Commands-format set that is all test split.

    Every voice that `holdout` names (a family, a synthesiser, a festival voice or an espeak-ng accent) is
    a candidate, families in equal shares. testing_list.txt lists every clip; validation_list.txt is empty.
    """
    holdout = tuple(holdout or ())
    if not holdout:
        raise ValueError("synthesize_holdout needs at least one voice family, synthesiser or voice to hold out")
    keywords, unknown_words = tuple(keywords), tuple(unknown_words)
    _check_words(keywords + unknown_words)
    if clips_per_keyword < 1 or clips_per_unknown_word < 0:
        raise ValueError("clips_per_keyword must be >= 1 and clips_per_unknown_word >= 0")
    say = progress or (lambda *_: None)
    _, pools = voice_pools({}, holdout)
    counts = {w: clips_per_keyword for w in keywords}
    counts |= {w: clips_per_unknown_word for w in unknown_words if clips_per_unknown_word}

    def finish_tree(tmp: Path) -> dict:
        every = sorted(p.relative_to(tmp).as_posix() for p in tmp.glob("*/*.wav"))
        (tmp / "testing_list.txt").write_text("".join(p + "\n" for p in every))
        (tmp / "validation_list.txt").write_text("")
        return {"stats": {"splits": {"training": 0, "validation": 0, "testing": len(every)}}}

    # Its own random stream: the held-out speakers are not the training speakers with another voice.
    stats, _ = _build(
        out_dir,
        counts,
        pools,
        dict.fromkeys(pools, 1.0),
        max(counts.values()),
        np.random.default_rng([seed, 1]),
        seed,
        conditions,
        jobs,
        overwrite,
        say,
        "synthesize_holdout",
        finish_tree,
        {
            "keywords": list(keywords),
            "unknown_words": list(unknown_words),
            "held_out": list(holdout),
            "voices": {f: list(n) for f, n in pools.items()},
        },
    )
    say(
        f"synthesize_holdout: wrote {stats['clips']} clips of held-out voices {list(holdout)} "
        f"({', '.join(f'{k} {v}' for k, v in stats['clips_by_voice'].items())}), {stats['speakers']} speakers, "
        f"in {stats['seconds']:.1f} s -> {out_dir}"
    )
    return stats
