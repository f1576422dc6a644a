"""Speech Commands' split rule (by speaker hash) and the list files that record it."""

import hashlib
import os
import re
from pathlib import Path

# From TensorFlow's speech_commands/input_data.py. Kept verbatim so that a speaker lands in
# the same split here as in every published Speech Commands result.
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1


def which_set(filename: str, validation_percentage: float, testing_percentage: float) -> str:
    """Speech Commands' split rule: 'training', 'validation' or 'testing' for a wav path.

    Only the speaker part of the name (before ``_nohash_``) is hashed, so all clips of one
    speaker share a split and the split never changes as files are added.
    """
    base_name = os.path.basename(filename)
    hash_name = re.sub(r"_nohash_.*$", "", base_name)
    hash_name_hashed = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percentage_hash = (int(hash_name_hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage_hash < validation_percentage:
        return "validation"
    if percentage_hash < testing_percentage + validation_percentage:
        return "testing"
    return "training"


def write_split_lists(root, validation_percentage: float = 10, testing_percentage: float = 10) -> dict:
    """Write validation_list.txt and testing_list.txt for every word clip under root; return split counts."""
    root = Path(root)
    lists = {"training": [], "validation": [], "testing": []}
    for wav in sorted(root.glob("*/*.wav")):
        if wav.parent.name.startswith("_"):
            continue  # _background_noise_ is never part of a split
        rel = wav.relative_to(root).as_posix()
        lists[which_set(rel, validation_percentage, testing_percentage)].append(rel)
    for split in ("validation", "testing"):
        (root / f"{split}_list.txt").write_text("".join(p + "\n" for p in lists[split]))
    return {split: len(paths) for split, paths in lists.items()}
