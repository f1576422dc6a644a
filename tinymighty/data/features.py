"""Feature extraction: TFLM's micro frontend (the seed's features) or librosa log-mel / MFCC.

Audio augmentation (time shift, background noise) follows TF's speech_commands input_data.py and is
applied to the training split only; silence samples always get background noise, as there.
"""

import numpy as np

from ..errors import InputError
from .audio import fit_length, read_wav
from .prepare import SILENCE


def check_framing(cfg) -> None:
    """Window and stride the frontends can take; the TF micro frontend aborts the process (SIGABRT) on a
    stride longer than its window and only takes whole milliseconds."""
    window, stride = cfg["window_ms"], cfg["stride_ms"]
    if stride > window:
        raise InputError(
            f"features.stride_ms ({stride}) is longer than features.window_ms ({window}): frames would skip audio "
            "(and the micro frontend crashes); use a stride no longer than the window, e.g. 30 / 20"
        )
    if cfg["kind"] == "micro" and (window != int(window) or stride != int(stride)):
        raise InputError(
            f"features.window_ms ({window}) and features.stride_ms ({stride}) must be whole milliseconds for "
            "the micro frontend; round them"
        )


def frame_count(cfg) -> int:
    n = cfg["sample_rate"] * cfg["clip_ms"] // 1000
    win = int(cfg["sample_rate"] * cfg["window_ms"] / 1000)
    hop = int(cfg["sample_rate"] * cfg["stride_ms"] / 1000)
    return 1 + (n - win) // hop


def feature_shape(cfg):
    return (frame_count(cfg), cfg["channels"])


def _micro(batch: np.ndarray, cfg) -> np.ndarray:
    """TF's audio micro frontend as the firmware computes it: the C in firmware/features/, equal bit for
    bit to TF's AudioMicrofrontend op (tests/test_frontend.py), scaled by 10/256 as TF's micro_speech
    training does. One definition serves the host's features and the device's."""
    from .micro_frontend import extract

    return extract(batch, cfg)


def _librosa(batch: np.ndarray, cfg, kind: str) -> np.ndarray:
    import librosa

    sr = cfg["sample_rate"]
    n_fft = int(sr * cfg["window_ms"] / 1000)
    hop = int(sr * cfg["stride_ms"] / 1000)
    out = []
    for clip in batch:
        mel = librosa.feature.melspectrogram(
            y=clip, sr=sr, n_fft=n_fft, hop_length=hop, center=False, n_mels=cfg["channels"], fmin=125, fmax=7500
        )
        logmel = librosa.power_to_db(mel, ref=1.0, top_db=None)
        feat = logmel if kind == "logmel" else librosa.feature.mfcc(S=logmel, n_mfcc=cfg["channels"])
        out.append(feat.T.astype(np.float32))
    return np.stack(out)


def extract(batch: np.ndarray, cfg) -> np.ndarray:
    """(N, samples) float audio -> (N, frames, channels) float32 features."""
    kind = cfg["kind"]
    check_framing(cfg)
    if kind == "micro":
        return _micro(batch, cfg)
    if kind in ("logmel", "mfcc"):
        return _librosa(batch, cfg, kind)
    raise ValueError(f"features.kind {kind!r} is not one of micro, logmel, mfcc")


def load_audio(index, split, aug, sample_rate, clip_ms, seed, copies=1, progress=None):
    """Return (audio (N, samples), labels (N,)) for one split, augmented for training."""
    from pathlib import Path

    data_dir = Path(index["data_dir"])
    n = sample_rate * clip_ms // 1000
    training = split == "training"
    rng = np.random.default_rng([seed, ("training", "validation", "testing").index(split)])
    background = [read_wav(data_dir / b, sample_rate) for b in index["background"]]
    labels = index["labels"]
    entries = index["splits"][split]
    if not entries:
        raise InputError(
            f"the {split} split of {data_dir} is empty in the index; rerun the prepare step and read its log"
        )
    cache = {}
    audio, y = [], []
    for _copy in range(copies if training else 1):
        for _i, e in enumerate(entries):
            if e["file"] is None:
                fg = np.zeros(n, np.float32)
            else:
                if e["file"] not in cache:
                    # A clip longer than clip_ms starts at the offset prepare chose (data.long_clips).
                    clip = read_wav(data_dir / e["file"], sample_rate)[e.get("offset", 0) :]
                    cache[e["file"]] = fit_length(clip, n)
                fg = cache[e["file"]]
            if training and aug["time_shift_ms"] > 0:
                shift_max = int(sample_rate * aug["time_shift_ms"] / 1000)
                shift = int(rng.integers(-shift_max, shift_max + 1))
                fg = np.roll(np.pad(fg, (shift_max, shift_max)), shift)[shift_max : shift_max + n]
            is_silence = e["label"] == SILENCE
            if background and (training or is_silence):
                bg = background[int(rng.integers(len(background)))]
                start = int(rng.integers(0, max(1, len(bg) - n)))
                bg = fit_length(bg[start : start + n], n)
                if is_silence:
                    vol = rng.uniform(0, 1)
                elif rng.uniform(0, 1) < aug["background_frequency"]:
                    vol = rng.uniform(0, aug["background_volume"])
                else:
                    vol = 0.0
                fg = np.clip(fg + vol * bg, -1.0, 1.0)
            audio.append(fg.astype(np.float32))
            y.append(labels.index(e["label"]))
            if progress and (len(y) % 2000 == 0):
                progress(f"{split}: loaded {len(y)} clips")
    return np.stack(audio), np.asarray(y, np.int32)


def compute_split(index, split, feat_cfg, aug_cfg, seed, progress=print):
    copies = aug_cfg.get("copies", 1)
    audio, y = load_audio(
        index, split, aug_cfg, feat_cfg["sample_rate"], feat_cfg["clip_ms"], seed, copies=copies, progress=progress
    )
    feats = []
    step = 1000
    for s in range(0, len(audio), step):
        feats.append(extract(audio[s : s + step], feat_cfg))
        if progress:
            progress(f"{split}: features {min(s + step, len(audio))}/{len(audio)}")
    return np.concatenate(feats).astype(np.float32), y
