"""Sources of speech: the synthesisers and voices that say the dataset's words.

Two synthesisers from Debian packages, in voice families that can be held out as a whole:

    family         synthesiser  voices                                     Debian packages
    espeak-ng      espeak-ng    English accents x variants (formant)       espeak-ng
    festival-ked   festival     ked_diphone (US male, diphone)             festival festvox-kdlpc16k
    festival-cmu   festival     kal_diphone (US male, diphone),            festival festvox-kallpc16k
                                cmu_us_slt_arctic_hts (US female, HTS)     festvox-us-slt-hts

festival-cmu holds the two CMU speakers that flite also ships (flite's kal is built from the same
diphone recordings, its slt from the same speaker), so holding that family out keeps every flite
speaker out of training. flite itself, in any form, is never used here: it is reserved for
independent held-out checks.

A `Voice` is one speaker: a synthesiser voice with its own pitch and speaking rate. `render(voice,
word, seed)` says one word; `seed` varies the utterance (intonation, a little pitch and rate), as
nobody says a word the same way twice. The result is int16 at 16 kHz, trimmed of the synthesiser's
silence. `render_many` does the same for many words at once, batching festival (whose start-up,
~0.3 s, would otherwise dominate) and running in threads. Same arguments give the same samples.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import math
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from .conditions import run_sox

SAMPLE_RATE = 16000

# flite (and everything built on it: festival's *_cg clustergen voices, FreeTTS's kevin/alan,
# eflite) is reserved for independent held-out checks and must never produce training data.
FORBIDDEN = re.compile(r"flite|freetts|kevin|_cg\b", re.IGNORECASE)


@dataclass(frozen=True)
class Family:
    name: str
    synth: str  # "espeak-ng" or "festival"
    about: str
    pitch: tuple[float, float]  # semitones from the voice's own pitch, drawn per speaker
    rate: tuple[float, float]  # speaking rate relative to the voice's own, drawn per speaker
    # Semitones by which the spectral envelope (formants: the vocal tract) moves, drawn per speaker. One
    # diphone voice then stands for shorter and longer vocal tracts, as women's and children's are.
    formant: tuple[float, float] = (0.0, 0.0)


FAMILIES = {
    f.name: f
    for f in (
        # espeak's pitch setting 15..85 and 145..215 words per minute, as the espeak-only dataset had.
        Family(
            "espeak-ng",
            "espeak-ng",
            "espeak-ng English accents x voice variants (formant synthesis)",
            (-6.0, 6.0),
            (0.83, 1.23),
        ),
        # A 105 Hz male voice from ~88 Hz up to ~210 Hz, its formants from 6 % lower to 26 % higher: more
        # of the speakers, men's, women's and in between, that a single voice can stand for.
        Family(
            "festival-ked",
            "festival",
            "festival ked_diphone (US male, diphone), pitch and formants moved per speaker",
            (-3.0, 12.0),
            (0.7, 1.1),
            (-1.0, 4.0),
        ),
        # Women's voices that no English festival voice in Debian has (slt is held out): festival's Italian and
        # Catalan female voices, saying the English words through a phone mapping, as a speaker of that
        # language would (English with an accent). Pitch moves with the formants (sox), as for slt.
        Family(
            "festival-accented",
            "festival",
            "festival lp_diphone (Italian female, diphone) and upc_ca_ona_hts (Catalan female, HTS) saying English "
            "words with their accent",
            (-4.0, 6.0),  # women's voices down to a lower pitch and up to children's (formants move too)
            (0.8, 1.15),
        ),
        Family(
            "festival-cmu",
            "festival",
            "festival kal_diphone (US male, diphone) and cmu_us_slt_arctic_hts "
            "(US female, HTS): the CMU speakers that flite also has",
            (-3.0, 5.0),
            (0.75, 1.15),
        ),
    )
}


@dataclass(frozen=True)
class FestivalVoice:
    family: str
    package: str
    # How pitch and speaking rate are set: pitch by festival's target f0 ("festival", the English diphone
    # voices' int_lr_params) or afterwards by sox (formants move with it); rate by festival's Duration_Stretch
    # ("festival"), hts_engine's -r ("hts"), or afterwards by sox's tempo ("sox": ona's -r only stretches pauses).
    pitch_by: str
    rate_by: str
    f0: tuple[float, float] = (0.0, 0.0)  # pitch_by festival: the voice's own target f0 mean and std in Hz
    stretch: float = 1.0  # rate_by festival: the voice's own Duration_Stretch
    language: str = "english"  # other languages say English words through ACCENT_PHONES

    @property
    def pitch_by_sox(self) -> bool:
        return self.pitch_by == "sox"


FESTIVAL_VOICES = {
    "ked_diphone": FestivalVoice("festival-ked", "festvox-kdlpc16k", "festival", "festival", (105.0, 15.0), 1.1),
    "kal_diphone": FestivalVoice("festival-cmu", "festvox-kallpc16k", "festival", "festival", (105.0, 14.0), 1.1),
    "cmu_us_slt_arctic_hts": FestivalVoice("festival-cmu", "festvox-us-slt-hts", "sox", "hts"),
    # lp segfaults on some words when festival stretches it (no at Duration_Stretch 1.24): sox sets its rate.
    "lp_diphone": FestivalVoice("festival-accented", "festvox-italp16k", "sox", "sox", language="italian"),
    "upc_ca_ona_hts": FestivalVoice("festival-accented", "festvox-ca-ona-hts", "sox", "sox", language="catalan"),
}
# English phones (festival's CMU lexicon, radio phone set) as a speaker of another language says them: the
# nearest phones of that language's phone set; h is dropped, th and dh become t and d. A stressed syllable's
# first vowel takes the language's stressed form (a -> a1).
ACCENT_PHONES = {
    "italian": {
        **{p: [p] for p in "b d f g k l m n p r s t v w z".split()},
        **{"aa": ["a"], "ae": ["E"], "ah": ["a"], "ao": ["O"], "aw": ["a", "u"], "ax": ["e"], "axr": ["e", "r"]},
        **{"ay": ["a", "i"], "ch": ["tS"], "dh": ["d"], "eh": ["E"], "er": ["e", "r"], "ey": ["e", "i"], "hh": []},
        **{"ih": ["i"], "iy": ["i"], "jh": ["dZ"], "ng": ["ng"], "ow": ["o", "u"], "oy": ["O", "i"], "sh": ["S"]},
        **{"th": ["t"], "uh": ["u"], "uw": ["u"], "y": ["j"], "zh": ["dZ"]},  # lp has no diphones for i-Z, Z-e
    },
    "catalan": {
        **{p: [p] for p in "b d f g k l m n p r s t w z".split()},
        **{"aa": ["a"], "ae": ["E"], "ah": ["ax"], "ao": ["O"], "aw": ["a", "w"], "ax": ["ax"], "axr": ["ax", "r"]},
        **{"ay": ["a", "j"], "ch": ["t", "S"], "dh": ["d"], "eh": ["E"], "er": ["ax", "r"], "ey": ["e", "j"]},
        **{"hh": [], "ih": ["i"], "iy": ["i"], "jh": ["d", "Z"], "ng": ["n"], "ow": ["o", "w"], "oy": ["O", "j"]},
        **{"sh": ["S"], "th": ["t"], "uh": ["u"], "uw": ["u"], "v": ["b"], "y": ["j"], "zh": ["Z"]},
    },
}
STRESSED = {"italian": {v: v + "1" for v in "i e E a o O u".split()}}
STRESSED["catalan"] = {**STRESSED["italian"], "ax": "a1"}

# espeak-ng's own (non-MBROLA) English accents; MBROLA voices need a binary and data that Debian lacks.
ESPEAK_ACCENTS = (
    "en",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-029",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-us-nyc",
)
ESPEAK_EXCLUDED_VARIANTS = frozenset({"fast"})  # espeak-ng's speed self-test, not a voice
ESPEAK_PITCH_PER_SEMITONE = 5.6  # measured: -p 50 -> 98 Hz, -p 70 -> 120 Hz for en-us
# Punctuation changes the intonation (statement, exclamation, question, continuation) in both
# synthesisers: the cheapest source of prosodic variety within one speaker.
PROSODY = ("{}", "{}.", "{}!", "{}?", "{},")
DIPHONE_LOWEST_SEMITONES = -4.0  # festival's diphone voices fail below ~-5 semitones (f0 under ~80 Hz)
TRIM_THRESHOLD = 0.02  # of the peak: below it, the synthesiser's padding is cut
TRIM_MARGIN_S = 0.02
FADE_S = 0.005


@dataclass(frozen=True)
class Voice:
    """One speaker: a synthesiser voice, its pitch (semitones from the voice's own), speaking rate and
    formant shift (semitones; the pitch stays where `pitch` puts it)."""

    family: str
    name: str  # espeak-ng "en-us+klatt3"; festival "ked_diphone"
    pitch: float = 0.0
    rate: float = 1.0
    formant: float = 0.0

    def __post_init__(self):
        if FORBIDDEN.search(self.name) or FORBIDDEN.search(self.family):
            raise ValueError(
                f"voice {self.name!r}: flite and its voices are reserved for independent held-out "
                "checks and are never used to make data"
            )
        if self.family not in FAMILIES:
            raise ValueError(f"unknown voice family {self.family!r}; known: {', '.join(FAMILIES)}")
        spec = FESTIVAL_VOICES.get(self.name)
        if self.synth == "festival" and (spec is None or spec.family != self.family):
            raise ValueError(f"{self.name!r} is not a festival voice of family {self.family!r}")
        if self.formant and spec is not None and spec.pitch_by_sox:
            raise ValueError(f"{self.name!r}: this voice's pitch is moved with its formants; use formant=0")

    @property
    def synth(self) -> str:
        return FAMILIES[self.family].synth

    def speaker_id(self, seed: int) -> str:
        """8 hex digits naming this speaker in file names (<id>_nohash_<n>.wav); stable for a seed."""
        key = f"{seed}|{self.family}|{self.name}|{self.pitch:.2f}|{self.rate:.3f}"
        if self.formant:
            key += f"|{self.formant:.2f}"
        return hashlib.sha1(key.encode()).hexdigest()[:8]


def held_out(voice: Voice, holdout) -> bool:
    """Whether voice is kept out of training by `holdout`: a family, a synthesiser, a voice name or an
    espeak-ng accent (`en-gb-scotland` holds out every `en-gb-scotland+<variant>`), or a list of them."""
    if not holdout:
        return False
    names = {holdout} if isinstance(holdout, str) else set(holdout)
    return bool(names & {voice.family, voice.synth, voice.name, voice.name.split("+")[0]})


# --------------------------------------------------------------------------- what is installed


def _exe(name: str, package: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise RuntimeError(
            f"{name} was not found on PATH; install the Debian package {package!r} (apt-get install {package})"
        )
    return exe


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


@lru_cache(maxsize=None)
def _espeak_voices() -> tuple[str, ...]:
    exe = _exe("espeak-ng", "espeak-ng")
    languages = {line.split()[1] for line in _run(exe, "--voices=en").splitlines()[1:] if line.split()}
    # A variant's usable name is its file name after "!v/" (names with spaces cannot follow "+").
    variants = sorted(
        {m.group(1) for m in re.finditer(r"!v/(\S+)\s*$", _run(exe, "--voices=variant"), re.M)}
        - ESPEAK_EXCLUDED_VARIANTS
    )
    return tuple(f"{a}+{v}" for a in ESPEAK_ACCENTS if a in languages for v in variants)


@lru_cache(maxsize=None)
def _festival_voices() -> tuple[str, ...]:
    if shutil.which("festival") is None:
        return ()
    listed = set(_run("festival", "-b", "(print (voice.list))").strip("()\n").split())
    return tuple(v for v in FESTIVAL_VOICES if v in listed)


def catalogue(families: Sequence[str] = tuple(FAMILIES)) -> dict[str, tuple[str, ...]]:
    """The installed voices of each family; fails naming the Debian packages that are missing."""
    out, missing = {}, []
    for family in families:
        if FAMILIES[family].synth == "espeak-ng":
            out[family] = _espeak_voices()
            continue
        wanted = [v for v, spec in FESTIVAL_VOICES.items() if spec.family == family]
        have = set(_festival_voices())
        missing += [FESTIVAL_VOICES[v].package for v in wanted if v not in have]
        out[family] = tuple(v for v in wanted if v in have)
    if missing:
        raise RuntimeError(
            f"festival voices missing for {', '.join(families)}: install the Debian packages "
            f"festival {' '.join(missing)}"
        )
    return out


@lru_cache(maxsize=None)
def versions() -> dict[str, str]:
    """Synthesiser versions, for provenance (data made by another version may differ)."""
    out = {}
    if shutil.which("espeak-ng"):
        out["espeak-ng"] = _run("espeak-ng", "--version").strip()
    if shutil.which("festival"):
        out["festival"] = _run("festival", "--version").strip()
    if shutil.which("sox"):
        out["sox"] = _run("sox", "--version").strip()
    return out


def draw_voice(rng: np.random.Generator, family: str, names: Sequence[str]) -> Voice:
    """A random speaker of a family: one of its voices, at a pitch, rate and formant shift within the family's
    ranges."""
    spec = FAMILIES[family]
    name = names[rng.integers(len(names))]
    formant = round(float(rng.uniform(*spec.formant)), 2) if spec.formant != (0.0, 0.0) else 0.0
    # A shorter vocal tract comes with a higher voice, as in people: the pitch range starts `formant` higher,
    # which also keeps the pitch the synthesiser is asked for (pitch - formant) inside the family's range.
    pitch = round(float(rng.uniform(min(spec.pitch[0] + max(formant, 0.0), spec.pitch[1]), spec.pitch[1])), 2)
    rate = round(float(rng.uniform(*spec.rate)), 3)
    return Voice(family=family, name=name, pitch=pitch, rate=rate, formant=formant)


# --------------------------------------------------------------------------- one utterance


@dataclass(frozen=True)
class Utterance:
    """How a speaker says a word this time: the text (with punctuation for intonation), pitch and rate."""

    text: str
    pitch: float
    rate: float


def utterance(voice: Voice, word: str, seed: int) -> Utterance:
    if not re.fullmatch(r"[a-z][a-z' ]*", word):
        raise ValueError(f"word {word!r}: use lower-case letters, apostrophes and spaces only")
    rng = np.random.default_rng(seed)
    return Utterance(
        text=PROSODY[rng.integers(len(PROSODY))].format(word),
        pitch=voice.pitch + float(rng.uniform(-0.5, 0.5)),
        rate=voice.rate * float(rng.uniform(0.96, 1.04)),
    )


def _parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono 16-bit WAV bytes as float samples and rate.

    espeak-ng --stdout cannot seek back, so its RIFF/data sizes are placeholders (0x7fff...);
    the wave module would trust them, so find the chunk and take what is there.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RuntimeError("the synthesiser did not produce a WAV stream")
    rate = int.from_bytes(data[24:28], "little")
    start = data.find(b"data", 12) + 8
    pcm = np.frombuffer(data[start : start + (len(data) - start) // 2 * 2], dtype="<i2")
    return pcm.astype(np.float64) / 32768.0, rate


def _finish(x: np.ndarray, rate: int, what: str) -> np.ndarray:
    """Resample to 16 kHz, cut the synthesiser's leading and trailing silence, fade the cut edges, int16."""
    if rate != SAMPLE_RATE:
        g = math.gcd(SAMPLE_RATE, rate)
        x = resample_poly(x, SAMPLE_RATE // g, rate // g)
    loud = np.flatnonzero(np.abs(x) > TRIM_THRESHOLD * np.abs(x).max(initial=0))
    if not loud.size:
        raise RuntimeError(f"{what} produced silence")
    margin = int(TRIM_MARGIN_S * SAMPLE_RATE)
    x = x[max(loud[0] - margin, 0) : loud[-1] + margin + 1].copy()
    fade = min(len(x) // 4, int(FADE_S * SAMPLE_RATE))  # no clicks at the cut edges
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    x[:fade] *= ramp
    x[len(x) - fade :] *= ramp[::-1]
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def _shift_formants(x: np.ndarray, rate: int, voice: Voice) -> np.ndarray:
    """Move the whole spectrum, formants and pitch, by voice.formant semitones, keeping the duration (sox).
    The synthesiser was asked for a pitch that much lower, so the pitch ends where the voice wants it."""
    return run_sox(x, "pitch", f"{100 * voice.formant:.1f}", rate=rate) if voice.formant else x


def _espeak(voice: Voice, word: str, seed: int) -> np.ndarray:
    u = utterance(voice, word, seed)
    pitch = int(np.clip(round(50 + ESPEAK_PITCH_PER_SEMITONE * (u.pitch - voice.formant)), 0, 99))
    cmd = [
        _exe("espeak-ng", "espeak-ng"),
        "-v",
        voice.name,
        "-p",
        str(pitch),
        "-s",
        str(round(175 * u.rate)),
        "--stdout",
        u.text,
    ]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) < 100:
        raise RuntimeError(f"espeak-ng failed: {' '.join(cmd)}\n{proc.stderr.decode(errors='replace')}")
    x, rate = _parse_wav(proc.stdout)
    return _finish(_shift_formants(x, rate, voice), rate, " ".join(cmd))


_LEXICON: dict[str, tuple] = {}
_LEXICON_LOCK = threading.Lock()


def _sexpr(text: str):
    """The first s-expression in festival's printed output, as nested lists of strings."""
    stack: list[list] = [[]]
    for tok in re.findall(r'\(|\)|"[^"]*"|[^\s()]+', text):
        if tok == "(":
            stack.append([])
        elif tok == ")":
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok.strip('"'))
    return stack[0]


def english_pronunciations(words: Sequence[str]) -> dict[str, tuple[tuple[tuple[str, ...], int], ...]]:
    """Syllables (phones, stress) of each word in festival's CMU lexicon, looked up once per process."""
    with _LEXICON_LOCK:
        missing = sorted({w for w in words if w not in _LEXICON})
        if missing:
            script = '(lex.select "cmu")\n' + "".join(f'(print (lex.lookup "{w}"))\n' for w in missing)
            out = subprocess.run(
                [_exe("festival", "festival"), "--pipe"], input=script, capture_output=True, text=True, check=False
            )
            entries = _sexpr(out.stdout)
            if out.returncode != 0 or len(entries) != len(missing):
                raise RuntimeError(f"festival's CMU lexicon did not answer for {missing}: {out.stderr[-1000:]}")
            for w, (_, _, syllables) in zip(missing, entries, strict=True):
                _LEXICON[w] = tuple((tuple(phones), int(stress)) for phones, stress in syllables)
        return {w: _LEXICON[w] for w in words}


def accent_entry(word: str, language: str) -> str:
    """A festival lexicon entry saying an English word with the phones of `language` (lex.add.entry)."""
    table, stressed = ACCENT_PHONES[language], STRESSED[language]
    syllables = []
    for phones, stress in english_pronunciations([word])[word]:
        out, marked = [], False
        for phone in phones:
            for p in table[phone]:
                if stress and not marked and p in stressed:
                    p, marked = stressed[p], True
                out.append(p)
        if out:
            syllables.append(f"(({' '.join(out)}) {stress})")
    return f'(lex.add.entry \'("{word}" nil ({" ".join(syllables)})))'


# Where the speech is: from the start of the first to the end of the last segment that is not a pause. An HTS
# voice renders a pause as noise (up to -25 dB of the word, 0.5 s before a Catalan "stop"), which no level
# threshold tells from a soft consonant; the segment times do.
_SPAN_SCHEME = """(define (tm_save_span utt file)
  (let ((sil (cadr (assoc 'silences (PhoneSet.description '(silences))))) (start nil) (end nil) (fd nil))
    (mapcar (lambda (s) (if (not (member_string (item.name s) sil))
                            (begin (if (not start) (set! start (item.feat s 'segment_start)))
                                   (set! end (item.feat s 'end)))))
            (utt.relation.items utt 'Segment))
    (set! fd (fopen file "w"))
    (format fd "%f %f\\n" start end)
    (fclose fd)))"""


def _festival_scheme(voice: str, items: Sequence[tuple[Utterance, Path]]) -> str:
    """A festival script saying each utterance with one voice into its own WAV file.

    Every clip sets all the parameters it uses, so a clip sounds the same whatever came before it
    in the batch: batching cannot change the data.
    """
    spec = FESTIVAL_VOICES[voice]
    lines = [f"(voice_{voice})", _SPAN_SCHEME]
    if spec.language != "english":  # every word of the batch, in the voice's own phones
        words = sorted({w for u, _ in items for w in re.findall(r"[a-z']+", u.text)})
        lines += [accent_entry(w, spec.language) for w in words]
    if spec.rate_by == "hts":
        lines.append("(set! tm_hts_base hts_engine_params)")  # the voice's own options, before ours
    for u, path in items:
        if spec.pitch_by == "festival":
            # Far below the voice's own pitch, festival's pitchmarks run out and it crashes (memory corruption).
            f = 2 ** (max(u.pitch, DIPHONE_LOWEST_SEMITONES) / 12)
            lines.append(
                f"(set! int_lr_params '((target_f0_mean {spec.f0[0] * f:.2f}) (target_f0_std "
                f"{spec.f0[1] * f:.2f}) (model_f0_mean 170) (model_f0_std 34)))"
            )
        if spec.rate_by == "festival":
            lines.append(f"(Parameter.set 'Duration_Stretch {spec.stretch / u.rate:.4f})")
        elif spec.rate_by == "hts":
            lines.append(f'(set! hts_engine_params (append tm_hts_base (list (list "-r" {u.rate:.4f}))))')
        text = u.text.replace("\\", "").replace('"', "")
        lines.append(f'(set! tm_utt (utt.synth (Utterance Text "{text}")))')
        lines.append(f'(utt.save.wave tm_utt "{path}" \'riff)')
        lines.append(f'(tm_save_span tm_utt "{path}.span")')
    return "\n".join(lines) + "\n"


class _FestivalCrash(RuntimeError):
    pass


def _festival_run(name: str, said: Sequence[tuple[Voice, Utterance]]) -> list[np.ndarray]:
    """Say each (voice, utterance) of one festival voice in one festival process; _FestivalCrash if it dies."""
    spec = FESTIVAL_VOICES[name]
    with tempfile.TemporaryDirectory(prefix="tm-festival-") as tmp:
        items = [(u, Path(tmp) / f"{i}.wav") for i, (_, u) in enumerate(said)]
        # festival says the pitch net of the formant shift; shifting the formants afterwards lifts it back.
        asked = [(replace(u, pitch=u.pitch - v.formant), path) for (u, path), (v, _) in zip(items, said, strict=True)]
        script = Path(tmp) / "say.scm"
        script.write_text(_festival_scheme(name, asked))
        proc = subprocess.run([_exe("festival", "festival"), "-b", str(script)], capture_output=True, check=False)
        out = []
        for (u, path), (voice, _) in zip(items, said, strict=True):
            if proc.returncode != 0 or not path.is_file() or not Path(f"{path}.span").is_file():
                raise _FestivalCrash(
                    f"festival {name} failed (exit {proc.returncode}) on {u.text!r}: "
                    f"{proc.stderr.decode(errors='replace')[-2000:]}"
                )
            x, rate = _parse_wav(path.read_bytes())
            start, end = (float(t) for t in Path(f"{path}.span").read_text().split())
            margin = int(TRIM_MARGIN_S * rate)
            x = x[max(int(start * rate) - margin, 0) : int(end * rate) + margin]  # the speech, without pauses
            effects = []
            if spec.rate_by == "sox" and round(u.rate, 4) != 1:
                effects += ["tempo", "-s", f"{u.rate:.4f}"]
            if spec.pitch_by_sox and round(u.pitch, 2) != 0:
                # festival's hts_engine ignores its pitch option, as lp's intonation ignores int_lr_params:
                # shift after synthesis, duration kept.
                effects += ["pitch", f"{100 * u.pitch:.1f}"]
            if effects:
                x = run_sox(x, *effects, rate=rate)
            out.append(_finish(_shift_formants(x, rate, voice), rate, f"festival {name} saying {u.text!r}"))
    return out


def _festival(requests: Sequence[tuple[Voice, str, int]]) -> list[np.ndarray]:
    """Say several (voice, word, seed) of one festival voice (any pitch and rate) in one festival process.

    festival crashes on a few combinations (lp_diphone segfaults on "five?"). Then every clip of the batch
    is said alone, and a clip that still crashes is said without its punctuation, then also at rate 1: each
    clip's samples depend on that clip alone, never on its batch.
    """
    name = requests[0][0].name
    if any(v.name != name for v, _, _ in requests):
        raise ValueError("one festival batch must use one festival voice")
    said = [(v, utterance(v, w, s)) for v, w, s in requests]
    try:
        return _festival_run(name, said)
    except _FestivalCrash as crash:
        if len(said) > 1:
            return [x for request in requests for x in _festival([request])]
        (voice, u), word = said[0], requests[0][1]
        for fallback in (replace(u, text=word), replace(u, text=word, rate=1.0)):
            try:
                return _festival_run(name, [(voice, fallback)])
            except _FestivalCrash:
                continue
        raise RuntimeError(str(crash)) from crash


def render(voice: Voice, word: str, seed: int) -> np.ndarray:
    """voice saying word: int16 samples at 16 kHz, trimmed of silence. Same arguments, same samples."""
    if voice.synth == "espeak-ng":
        return _espeak(voice, word, seed)
    return _festival([(voice, word, seed)])[0]


def render_many(
    requests: Sequence[tuple[Voice, str, int]],
    jobs: int = 2,
    batch: int = 32,
    then: Callable[[int, np.ndarray], object] | None = None,
) -> Iterator[tuple[int, object]]:
    """Render (voice, word, seed) requests; yield (index, audio) as they finish, in no fixed order.

    festival requests are batched per festival voice, `batch` to a process (its start-up would
    otherwise cost more than the speech); espeak-ng runs one process per word. `then(index, audio)`,
    if given, runs in the worker thread (e.g. conditions and writing the file) and its result is
    yielded instead of the audio. Threads suffice: the work is in subprocesses and GIL-free numpy.
    Results do not depend on jobs or batch.
    """
    tasks: list[list[int]] = []
    festival: dict[str, list[int]] = {}
    for i, (voice, _, _) in enumerate(requests):
        if voice.synth == "espeak-ng":
            tasks.append([i])
        else:
            festival.setdefault(voice.name, []).append(i)
    for indices in festival.values():
        tasks += [indices[k : k + batch] for k in range(0, len(indices), batch)]

    def work(indices: list[int]) -> list[tuple[int, object]]:
        batch_requests = [requests[i] for i in indices]
        if batch_requests[0][0].synth == "espeak-ng":
            audio = [_espeak(*batch_requests[0])]
        else:
            audio = _festival(batch_requests)
        return [(i, then(i, a) if then else a) for i, a in zip(indices, audio, strict=True)]

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for done in concurrent.futures.as_completed([pool.submit(work, t) for t in tasks]):
            yield from done.result()
