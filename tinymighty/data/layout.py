"""The on-disk layout of every dataset, synthesised or the real Speech Commands, and safe directory replacement.

Both paths end in the same on-disk layout, so everything downstream (feature extraction,
training, evaluation) cannot tell them apart:

    <root>/<word>/<speaker>_nohash_<n>.wav      16 kHz mono int16, exactly 1 s
    <root>/_background_noise_/*.wav             long noise recordings for augmentation
    <root>/validation_list.txt, testing_list.txt paths relative to <root>
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

BACKGROUND_DIR = "_background_noise_"


def _check_target(final: Path, overwrite: bool) -> None:
    """Fail before any work if final holds data we were not told to replace (a symlink holds none)."""
    occupied = not final.is_symlink() and (final.is_file() or (final.is_dir() and any(final.iterdir())))
    if occupied and not overwrite:
        raise FileExistsError(f"{final} exists and is not empty; delete it or pass overwrite=True")


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()  # for a link to someone's dataset: drop the link, never the data behind it
    elif path.is_dir():
        shutil.rmtree(path)


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished build into place so a crash never leaves a half-written dataset at `final`."""
    _remove(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
