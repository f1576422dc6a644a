"""Voices (real espeak-ng, festival and sox) and recording conditions (measured, not assumed)."""

import shutil

import numpy as np
import pytest

from tinymighty.data import conditions as C
from tinymighty.data import voices as V

RATE = 16000
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the Debian package espeak-ng")
needs_festival = pytest.mark.skipif(
    shutil.which("festival") is None,
    reason="needs the Debian packages festival festvox-kdlpc16k festvox-italp16k festvox-ca-ona-hts festvox-kallpc16k "
    "festvox-us-slt-hts",
)
needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="needs the Debian package sox")

# One voice of each kind of synthesis: espeak-ng formant (two variants), festival diphone and HTS, English and
# accented (Italian lp, Catalan ona).
VOICES = [
    pytest.param(V.Voice("espeak-ng", "en-us+m3"), marks=needs_espeak, id="espeak-en-us+m3"),
    pytest.param(V.Voice("espeak-ng", "en-gb-x-rp+f2"), marks=needs_espeak, id="espeak-en-gb-x-rp+f2"),
    pytest.param(V.Voice("festival-ked", "ked_diphone"), marks=needs_festival, id="festival-ked"),
    pytest.param(V.Voice("festival-accented", "lp_diphone"), marks=[needs_festival, needs_sox], id="festival-lp"),
    pytest.param(V.Voice("festival-accented", "upc_ca_ona_hts"), marks=[needs_festival, needs_sox], id="festival-ona"),
    pytest.param(V.Voice("festival-cmu", "kal_diphone"), marks=needs_festival, id="festival-kal"),
    pytest.param(
        V.Voice("festival-cmu", "cmu_us_slt_arctic_hts"), marks=[needs_festival, needs_sox], id="festival-slt"
    ),
]


def f0(x: np.ndarray) -> float:
    """Median pitch (Hz) of the loud frames, by autocorrelation."""
    x = np.asarray(x, dtype=np.float64)
    n, hop, ref = int(0.04 * RATE), int(0.01 * RATE), C.rms(x)
    found = []
    for i in range(0, len(x) - n, hop):
        frame = x[i : i + n] - x[i : i + n].mean()
        if C.rms(frame) < 0.5 * ref:
            continue
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        lo, hi = RATE // 450, RATE // 55
        k = lo + int(np.argmax(ac[lo:hi]))
        if ac[k] > 0.4 * ac[0]:
            found.append(RATE / k)
    assert found, "no voiced frame found"
    return float(np.median(found))


def band_fraction(x: np.ndarray, lo: float, hi: float) -> float:
    power = np.abs(np.fft.rfft(np.asarray(x, dtype=np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    return float(power[(f >= lo) & (f <= hi)].sum() / power.sum())


def dbfs(pcm: np.ndarray) -> float:
    return C.dbfs(np.asarray(pcm, dtype=np.float64) / 32768.0)


# --------------------------------------------------------------------------- voices


@pytest.mark.parametrize("voice", VOICES)
@pytest.mark.parametrize("word", ["yes", "no"])
def test_each_voice_family_says_a_word(voice, word):
    audio = V.render(voice, word, seed=1)
    assert audio.dtype == np.int16 and audio.ndim == 1
    assert 0.15 <= len(audio) / RATE <= 0.9  # a single short word, its synthesiser's silence trimmed
    assert -32 < dbfs(audio) < -6  # audible, not clipped to a square wave
    assert band_fraction(audio, 80, 5000) > 0.9  # speech lives here
    assert 60 < f0(audio) < 350  # voiced, at a human pitch
    assert abs(int(audio[0])) < 200 and abs(int(audio[-1])) < 200  # faded edges: no click


@pytest.mark.parametrize("voice", VOICES)
def test_pitch_and_rate_change_the_voice(voice):
    base = V.render(voice, "no", seed=2)
    higher = V.render(V.Voice(voice.family, voice.name, pitch=6.0), "no", seed=2)
    assert f0(higher) / f0(base) == pytest.approx(2 ** (6 / 12), rel=0.12)
    slow = V.render(V.Voice(voice.family, voice.name, rate=0.8), "no", seed=2)
    fast = V.render(V.Voice(voice.family, voice.name, rate=1.25), "no", seed=2)
    assert len(slow) > 1.2 * len(fast)


@pytest.mark.parametrize("voice", VOICES)
def test_render_is_deterministic_and_seed_varies_the_utterance(voice):
    a = V.render(voice, "yes", seed=11)
    assert np.array_equal(a, V.render(voice, "yes", seed=11))
    others = [V.render(voice, "yes", seed=s) for s in (12, 13)]
    assert not all(len(o) == len(a) and np.array_equal(o, a) for o in others)


@needs_espeak
@needs_festival
@needs_sox
def test_render_many_matches_render_whatever_the_batching():
    requests = [
        (V.Voice("festival-ked", "ked_diphone", 2.0, 0.9), "yes", 1),
        (V.Voice("espeak-ng", "en-us+f3", -1.0, 1.1), "no", 2),
        (V.Voice("festival-ked", "ked_diphone", -2.0, 1.05), "stop", 3),
        (V.Voice("festival-cmu", "cmu_us_slt_arctic_hts", 1.5, 1.0), "nose", 4),
        (V.Voice("festival-ked", "ked_diphone", 5.0, 0.8), "yes", 5),
        (V.Voice("festival-cmu", "cmu_us_slt_arctic_hts", 0.0, 0.9), "no", 6),
    ]
    alone = [V.render(*r) for r in requests]
    for jobs, batch in [(1, 32), (2, 2)]:
        got = dict(V.render_many(requests, jobs=jobs, batch=batch))
        assert sorted(got) == list(range(len(requests)))
        assert all(np.array_equal(got[i], alone[i]) for i in range(len(requests))), (jobs, batch)
    lengths = dict(V.render_many(requests, then=lambda i, audio: len(audio)))
    assert lengths == {i: len(a) for i, a in enumerate(alone)}


@needs_festival
def test_accented_voices_say_english_words_in_their_own_phones():
    assert V.english_pronunciations(["yes", "seven"]) == {
        "yes": ((("y", "eh", "s"), 1),),
        "seven": ((("s", "eh"), 1), (("v", "ax", "n"), 0)),
    }
    assert V.accent_entry("yes", "italian") == '(lex.add.entry \'("yes" nil (((j E1 s) 1))))'
    assert V.accent_entry("seven", "catalan") == '(lex.add.entry \'("seven" nil (((s E1) 1) ((b ax n) 0))))'
    assert V.accent_entry("house", "italian") == '(lex.add.entry \'("house" nil (((a1 u s) 1))))'  # no h


@needs_festival
def test_formant_shift_keeps_the_pitch_and_moves_the_spectrum():
    plain = V.render(V.Voice("festival-ked", "ked_diphone", pitch=6.0), "yes", 4)
    shifted = V.render(V.Voice("festival-ked", "ked_diphone", pitch=6.0, formant=3.0), "yes", 4)
    assert f0(shifted) == pytest.approx(f0(plain), rel=0.08)

    def centroid(x):
        power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
        return float((np.fft.rfftfreq(len(x), 1 / RATE) * power).sum() / power.sum())

    assert centroid(shifted) / centroid(plain) == pytest.approx(2 ** (3 / 12), rel=0.1)
    with pytest.raises(ValueError, match="formant=0"):
        V.Voice("festival-accented", "upc_ca_ona_hts", formant=2.0)


def test_a_festival_crash_falls_back_clip_by_clip(monkeypatch):
    """festival segfaults on a few utterances: the batch is said clip by clip, the crashing clip without its
    punctuation; the other clips come out as they would alone."""
    voice = V.Voice("festival-ked", "ked_diphone")
    seeds = [s for s in range(60) if V.utterance(voice, "yes", s).text == "yes?"][:1] + [1, 2]
    calls = []

    def fake_run(name, said):
        calls.append([u.text for _, u in said])
        if any(u.text == "yes?" for _, u in said):
            raise V._FestivalCrash("festival ked_diphone failed (exit -11)")
        return [np.full(100, len(u.text), np.int16) for _, u in said]

    monkeypatch.setattr(V, "_festival_run", fake_run)
    out = V._festival([(voice, "yes", s) for s in seeds])
    assert calls[0] == [V.utterance(voice, "yes", s).text for s in seeds] and ["yes"] in calls
    assert out[0][0] == len("yes") and [a[0] for a in out[1:]] == [
        len(V.utterance(voice, "yes", s).text) for s in seeds[1:]
    ]


def test_flite_and_its_voices_are_refused():
    for family, name in [
        ("festival-cmu", "cmu_us_slt_cg"),
        ("festival-cmu", "cmu_us_awb_cg"),
        ("espeak-ng", "flite"),
        ("festival-ked", "kevin16"),
    ]:
        with pytest.raises(ValueError, match="flite"):
            V.Voice(family, name)
    with pytest.raises(ValueError, match="not a festival voice"):
        V.Voice("festival-ked", "kal_diphone")  # kal belongs to festival-cmu: families cannot be mixed up


@needs_espeak
@needs_festival
def test_catalogue_lists_each_family_and_no_flite():
    cat = V.catalogue()
    assert set(cat) == set(V.FAMILIES)
    assert len(cat["espeak-ng"]) > 100 and "en-us+m3" in cat["espeak-ng"]
    assert cat["festival-ked"] == ("ked_diphone",)
    assert set(cat["festival-cmu"]) == {"kal_diphone", "cmu_us_slt_arctic_hts"}
    assert not any(V.FORBIDDEN.search(n) for names in cat.values() for n in names)
    rng = np.random.default_rng(0)
    for family, names in cat.items():
        voice = V.draw_voice(rng, family, names)
        spec = V.FAMILIES[family]
        assert spec.pitch[0] <= voice.pitch <= spec.pitch[1] and spec.rate[0] <= voice.rate <= spec.rate[1]


def test_missing_festival_voices_name_their_debian_packages(monkeypatch):
    monkeypatch.setattr(V, "_festival_voices", lambda: ("ked_diphone",))
    with pytest.raises(RuntimeError, match="festvox-kallpc16k festvox-us-slt-hts"):
        V.catalogue(("festival-ked", "festival-cmu"))
    assert V.catalogue(("festival-ked",)) == {"festival-ked": ("ked_diphone",)}


def test_held_out_by_family_synthesiser_or_voice():
    kal = V.Voice("festival-cmu", "kal_diphone")
    ked = V.Voice("festival-ked", "ked_diphone")
    espeak = V.Voice("espeak-ng", "en-us+m3")
    assert V.held_out(kal, "festival-cmu") and not V.held_out(ked, "festival-cmu")
    assert V.held_out(kal, "festival") and V.held_out(ked, "festival") and not V.held_out(espeak, "festival")
    assert V.held_out(ked, ["ked_diphone"]) and not V.held_out(espeak, None)


# --------------------------------------------------------------------------- conditions

# A deterministic 0.4 s vowel-like word: 120 Hz harmonics, so tests of conditions need no synthesiser.
_t = np.arange(int(0.4 * RATE)) / RATE
WORD = (sum(np.sin(2 * np.pi * 120 * k * _t) / k for k in range(1, 20)) * np.hanning(len(_t)) * 8000).astype(np.int16)
QUIET = -140.0  # a noise floor that rounds to digital zero, to measure one stage alone
ONLY = dict(p_background=0.0, p_room=0.0, p_speed=0.0, p_sox=0.0, gain_db=(0.0, 0.0), floor_dbfs=(QUIET, QUIET))


def profile(**changes) -> C.Profile:
    return C.Profile(**{**ONLY, **changes})


def test_apply_is_deterministic_and_depends_on_the_seed():
    a, ca = C.apply(WORD, seed=5)
    b, cb = C.apply(WORD, seed=5)
    assert a.dtype == np.int16 and a.shape == (RATE,)
    assert a.tobytes() == b.tobytes() and ca == cb
    c, cc = C.apply(WORD, seed=6)
    assert c.tobytes() != a.tobytes() and cc != ca


@pytest.mark.parametrize("level", [-75.0, -60.0])
def test_noise_floor_has_the_level_it_says(level):
    clip, c = C.apply(WORD, seed=3, profile=profile(floor_dbfs=(level, level)))
    silent = np.concatenate([clip[: c.offset], clip[c.offset + c.length :]])
    assert len(silent) > 0.4 * RATE
    assert dbfs(silent) == pytest.approx(level, abs=0.5)
    assert np.count_nonzero(silent == 0) < 0.2 * len(silent)  # not digital silence


@pytest.mark.parametrize("kind", sorted(C.BACKGROUNDS))
@pytest.mark.parametrize("snr", [5.0, 20.0])
def test_background_noise_has_the_snr_it_says(kind, snr):
    seed = 17
    noisy, c = C.apply(WORD, seed, profile(p_background=1.0, snr_db=(snr, snr), backgrounds=(kind,)))
    clean, c0 = C.apply(WORD, seed, profile())
    assert (c.offset, c.length, c.background, c.snr_db) == (c0.offset, c0.length, kind, snr)
    noise = noisy.astype(np.float64) - clean
    speech = clean[c.offset : c.offset + c.length]
    assert dbfs(speech) - dbfs(noise) == pytest.approx(snr, abs=0.3)
    assert dbfs(speech) == pytest.approx(C.DEFAULT.level_dbfs, abs=0.1)


def test_gain_scales_the_clip():
    loud, _ = C.apply(WORD, 4, profile(gain_db=(6.0, 6.0)))
    plain, _ = C.apply(WORD, 4, profile())
    assert dbfs(loud) - dbfs(plain) == pytest.approx(6.0, abs=0.05)


def test_room_adds_a_decaying_energy_tail():
    # A broadband word (a hissed "sss"): with harmonics alone, the room's comb of resonances makes the
    # measured decay wobble by several dB.
    hiss = (np.random.default_rng(0).normal(size=len(WORD)) * np.hanning(len(WORD)) * 6000).astype(np.int16)
    dry, c = C.apply(hiss, 8, profile())
    wet, cw = C.apply(hiss, 8, profile(p_room=1.0, rt60_s=(0.5, 0.5), drr_db=(3.0, 3.0)))
    assert (cw.rt60_s, cw.offset) == (0.5, c.offset)
    end = c.offset + c.length
    assert end + int(0.25 * RATE) <= RATE  # (seed chosen so the tail fits in the second)
    after = [dbfs(wet[end + int(a * RATE) : end + int((a + 0.05) * RATE)]) for a in (0.0, 0.1, 0.2)]
    assert not dry[end:].any()  # without a room the word stops dead
    assert after[0] > -45 and after[0] > after[1] > after[2]  # with one it rings on and dies away
    # 60 dB per 0.5 s is 12 dB per 100 ms
    assert after[0] - after[1] == pytest.approx(12, abs=3) and after[1] - after[2] == pytest.approx(12, abs=3)


@pytest.mark.parametrize("rt60,drr", [(0.2, 0.0), (0.6, 9.0)])
def test_room_impulse_response_has_its_rt60_and_drr(rt60, drr):
    h = C.room_impulse_response(np.random.default_rng(1), rt60, drr)
    assert h[0] == 1.0
    assert 10 * np.log10(1.0 / np.sum(h[1:] ** 2)) == pytest.approx(drr, abs=0.01)
    # Schroeder backward integration: the -5..-25 dB slope extrapolated to 60 dB
    edc = 10 * np.log10(np.cumsum((h[1:] ** 2)[::-1])[::-1] / np.sum(h[1:] ** 2))
    t5, t25 = np.argmax(edc < -5) / RATE, np.argmax(edc < -25) / RATE
    assert 3 * (t25 - t5) == pytest.approx(rt60, rel=0.2)


def test_word_is_placed_anywhere_in_the_second():
    offsets = []
    for seed in range(40):
        clip, c = C.apply(WORD, seed, profile())
        loud = np.flatnonzero(np.abs(clip) > 0.01 * np.abs(clip).max())
        assert loud[0] >= c.offset and loud[0] - c.offset < 0.06 * RATE  # the word starts where it says
        assert c.offset + c.length <= RATE and not c.truncated  # and ends inside the second
        offsets.append(c.offset)
    span = RATE - len(WORD)
    assert min(offsets) < 0.15 * span and max(offsets) > 0.85 * span  # anywhere, not centred
    assert len(set(offsets)) == len(offsets)


def test_a_word_longer_than_a_second_is_cut():
    long = np.tile(WORD, 3)
    clip, c = C.apply(long, 0, profile())
    assert c.truncated and c.offset == 0 and clip.shape == (RATE,)


def test_speed_resampling_moves_pitch_and_length_together():
    faster = C.resample_speed(WORD.astype(np.float64), 1.1)
    assert len(faster) == pytest.approx(len(WORD) / 1.1, abs=2)
    assert f0(faster) / f0(WORD) == pytest.approx(1.1, rel=0.03)


@needs_sox
def test_sox_changes_tempo_and_pitch_separately():
    x = WORD.astype(np.float64) / 32768
    up = C.tempo_pitch(x, 1.0, 4.0)
    assert len(up) == pytest.approx(len(x), rel=0.02)
    assert f0(up) / f0(x) == pytest.approx(2 ** (4 / 12), rel=0.04)
    quick = C.tempo_pitch(x, 1.25, 0.0)
    assert len(quick) == pytest.approx(len(x) / 1.25, rel=0.03)
    assert f0(quick) == pytest.approx(f0(x), rel=0.03)


@needs_sox
def test_default_profile_applies_every_stage_over_a_few_clips():
    drawn = [C.apply(WORD, seed)[1] for seed in range(40)]
    assert any(c.speed for c in drawn) and any(c.tempo for c in drawn) and any(c.rt60_s for c in drawn)
    assert {c.background for c in drawn} - {None} and any(c.background is None for c in drawn)
    lo, hi = C.DEFAULT.floor_dbfs
    assert all(lo <= c.floor_dbfs <= hi for c in drawn)
