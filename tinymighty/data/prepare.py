"""Split a Speech-Commands-layout dataset and pick silence/unknown samples the way TF's speech_commands does."""

import math
import random
from pathlib import Path

from .layout import BACKGROUND_DIR
from .splits import which_set

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
SPLITS = ("training", "validation", "testing")


def labels_for(wanted_words):
    """Label order used everywhere: silence, unknown, then the wanted words (the seed's 4 classes)."""
    return [SILENCE, UNKNOWN, *wanted_words]


def _read_list(path: Path):
    return {line.strip() for line in path.read_text().splitlines() if line.strip()} if path.exists() else None


def prepare_index(
    data_dir,
    wanted_words,
    validation_percentage=10,
    testing_percentage=10,
    silence_percentage=10,
    unknown_percentage=10,
    seed=0,
):
    """Return {labels, splits: {split: [{file, label}]}, counts, background} for a dataset directory.

    Splits come from validation_list.txt/testing_list.txt when present, else from the hash of the speaker
    id (`which_set`), so a speaker never spans two splits either way.
    """
    data_dir = Path(data_dir)
    wavs = sorted(p for p in data_dir.glob("*/*.wav") if p.parent.name != BACKGROUND_DIR)
    if not wavs:
        raise FileNotFoundError(f"no '<word>/*.wav' clips under {data_dir}; is it a Speech Commands layout?")
    missing = [w for w in wanted_words if not (data_dir / w).is_dir()]
    if missing:
        raise ValueError(f"wanted_words {missing} have no folder in {data_dir}; fix data.wanted_words")
    val_list = _read_list(data_dir / "validation_list.txt")
    test_list = _read_list(data_dir / "testing_list.txt")
    rng = random.Random(seed)
    wanted = {w: [] for w in SPLITS}
    unknown = {w: [] for w in SPLITS}
    for wav in wavs:
        rel = wav.relative_to(data_dir).as_posix()
        if val_list is not None and test_list is not None:
            split = "validation" if rel in val_list else "testing" if rel in test_list else "training"
        else:
            split = which_set(rel, validation_percentage, testing_percentage)
        word = wav.parent.name
        (wanted if word in wanted_words else unknown)[split].append(
            {"file": rel, "label": word if word in wanted_words else UNKNOWN}
        )
    splits = {}
    for split in SPLITS:
        entries = list(wanted[split])
        size = len(entries)
        # TF's convention: silence and unknown are percentages of the wanted-word count of the split.
        silence_n = int(math.ceil(size * silence_percentage / 100))
        entries += [{"file": None, "label": SILENCE} for _ in range(silence_n)]
        pool = list(unknown[split])
        rng.shuffle(pool)
        entries += pool[: int(math.ceil(size * unknown_percentage / 100))]
        rng.shuffle(entries)
        splits[split] = entries
    labels = labels_for(wanted_words)
    counts = {s: {lab: sum(e["label"] == lab for e in splits[s]) for lab in labels} for s in SPLITS}
    background = sorted(p.relative_to(data_dir).as_posix() for p in (data_dir / BACKGROUND_DIR).glob("*.wav"))
    return {"data_dir": str(data_dir), "labels": labels, "splits": splits, "counts": counts, "background": background}
