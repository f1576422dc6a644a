"""Split a Speech-Commands-layout dataset and pick silence/unknown samples the way TF's speech_commands does."""

import math
import random
from pathlib import Path

from ..errors import InputError
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


def _split_lists(data_dir: Path):
    """(validation, testing) sets of listed clips, or (None, None) to split by the speaker hash. One list
    without the other is refused: using one would silently drop the other's assignments."""
    names = ("validation_list.txt", "testing_list.txt")
    lists = [_read_list(data_dir / name) for name in names]
    if (lists[0] is None) != (lists[1] is None):
        have, lack = names if lists[1] is None else names[::-1]
        raise InputError(
            f"{data_dir} has {have} but no {lack}: the splits would be half from the lists and half from the "
            f"speaker hash. Add {data_dir / lack} (empty for no clips), or delete {data_dir / have} to split every "
            "clip by the speaker hash (data.validation_percentage / data.testing_percentage)"
        )
    return lists


def _missing_listed(lists, present) -> dict:
    """List entries that name no clip on disk, per list file (the sanity pass reports them)."""
    names = ("validation_list.txt", "testing_list.txt")
    return {n: sorted(set(lst) - present) for n, lst in zip(names, lists, strict=True) if lst and set(lst) - present}


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
    if validation_percentage + testing_percentage >= 100:
        raise InputError(
            f"data.validation_percentage ({validation_percentage}) + data.testing_percentage ({testing_percentage}) "
            "leave no training clips; keep their sum below 100 (10 + 10 is the Speech Commands default)"
        )
    wavs = sorted(p for p in data_dir.glob("*/*.wav") if p.parent.name != BACKGROUND_DIR)
    if not wavs:
        raise InputError(f"no '<word>/*.wav' clips under {data_dir}; is it a Speech Commands layout?")
    missing = [w for w in wanted_words if not (data_dir / w).is_dir()]
    if missing:
        raise InputError(f"data.wanted_words {missing} have no folder in {data_dir}; fix data.wanted_words")
    words_with_clips = {p.parent.name for p in wavs}
    empty = [w for w in wanted_words if w not in words_with_clips]
    if empty:
        raise InputError(
            f"data.wanted_words {empty}: the folder(s) {[str(data_dir / w) for w in empty]} hold no .wav clips, so "
            f"the model would have an output for a word it never heard; add clips or remove the word from "
            "data.wanted_words"
        )
    val_list, test_list = _split_lists(data_dir)
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
    for split in SPLITS:
        if not any(e["file"] for e in splits[split]):
            raise InputError(
                f"the {split} split of {data_dir} has no clips of data.wanted_words {list(wanted_words)} "
                f"({len(wavs)} clips in all); add clips, or change the split lists or data.validation_percentage / "
                "data.testing_percentage"
            )
    labels = labels_for(wanted_words)
    counts = {s: {lab: sum(e["label"] == lab for e in splits[s]) for lab in labels} for s in SPLITS}
    background = sorted(p.relative_to(data_dir).as_posix() for p in (data_dir / BACKGROUND_DIR).glob("*.wav"))
    index = {"data_dir": str(data_dir), "labels": labels, "splits": splits, "counts": counts, "background": background}
    if val_list is not None:
        present = {p.relative_to(data_dir).as_posix() for p in wavs}
        index["missing_listed"] = _missing_listed((val_list, test_list), present)
    return index


def holdout_index(data_dir, wanted_words):
    """Index of a held-out set, in prepare_index's format: every clip is a test clip, the wanted words by name,
    every other word unknown, no silence (it holds no voice) and no background noise (no augmentation)."""
    data_dir = Path(data_dir)
    wavs = sorted(p for p in data_dir.glob("*/*.wav") if p.parent.name != BACKGROUND_DIR)
    if not wavs:
        raise FileNotFoundError(f"no '<word>/*.wav' clips under the held-out set {data_dir}")
    missing = [w for w in wanted_words if not (data_dir / w).is_dir()]
    if missing:
        raise ValueError(f"the held-out set {data_dir} has no clips of wanted_words {missing}")
    entries = [
        {
            "file": p.relative_to(data_dir).as_posix(),
            "label": p.parent.name if p.parent.name in wanted_words else UNKNOWN,
        }
        for p in wavs
    ]
    labels = labels_for(wanted_words)
    splits = {"training": [], "validation": [], "testing": entries}
    counts = {s: {lab: sum(e["label"] == lab for e in splits[s]) for lab in labels} for s in SPLITS}
    return {"data_dir": str(data_dir), "labels": labels, "splits": splits, "counts": counts, "background": []}
