"""The dataset sanity pass, run when a dataset is prepared: every clip the index uses is checked (format,
length) from its WAV header in seconds, before any feature job starts.

It refuses clips the pipeline cannot read (naming the files and their formats), decides where a clip longer
than ``clip_ms`` is cut (``long_clips``: ``start`` keeps its first clip_ms, as before; ``loudest`` keeps the
clip_ms window with the most energy and records its ``offset`` in the index entry), and reports what a user
should know: clips per class and split, clips that are padded with silence or cut, list entries that name
missing files, and classes with no clip in a split.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .audio import check_format, loudest_start, read_wav, wav_info

LONG_CLIPS = ("start", "loudest")
SHOWN = 5  # example file names per warning


def _examples(names) -> str:
    names = list(names)
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def check_clips(index: dict, sample_rate: int = 16000, clip_ms: int = 1000, long_clips: str = "start") -> dict:
    """Checks every clip of the index (in place: long clips may get an ``offset``) and returns the report
    stored as ``index["sanity"]``."""
    if long_clips not in LONG_CLIPS:
        raise InputError(f"data.long_clips is {long_clips!r}; use one of {', '.join(LONG_CLIPS)}")
    data_dir = Path(index["data_dir"])
    n = sample_rate * clip_ms // 1000
    bad, short, long = [], [], []
    frames = {}
    for entries in index["splits"].values():
        for e in entries:
            rel = e["file"]
            if rel is None or rel in frames:
                continue
            try:
                info = wav_info(data_dir / rel)
                check_format(info, sample_rate)
            except InputError as err:
                bad.append(str(err))
                continue
            frames[rel] = info.frames
            (short if info.frames < n else long if info.frames > n else []).append(rel)
    for rel in index.get("background", []):
        try:
            check_format(wav_info(data_dir / rel), sample_rate)
        except InputError as err:
            bad.append(str(err))
    if bad:
        more = f"\n... and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        raise InputError(
            f"{len(bad)} clip(s) under {data_dir} cannot be used:\n" + "\n".join(bad[:SHOWN]) + more
        ) from None
    offsets = {}
    if long_clips == "loudest":
        for rel in long:
            offsets[rel] = loudest_start(read_wav(data_dir / rel, sample_rate), n)
        for entries in index["splits"].values():
            for e in entries:
                if e["file"] in offsets:
                    e["offset"] = offsets[e["file"]]
    shortest = min(frames.values(), default=n)
    longest = max(frames.values(), default=n)
    return {
        "sample_rate": sample_rate,
        "clip_ms": clip_ms,
        "clip_samples": n,
        "long_clips": long_clips,
        "padded": sorted(short),
        "cut": sorted(long),
        "shortest_ms": 1000 * shortest / sample_rate,
        "longest_ms": 1000 * longest / sample_rate,
        "missing_listed": index.pop("missing_listed", {}),
    }


def report_lines(index: dict) -> list[str]:
    """What the sanity pass found, as lines for the log (warnings start with WARNING)."""
    s = index["sanity"]
    clip_ms = s["clip_ms"]
    lines = []
    for split, counts in index["counts"].items():
        lines.append(f"{split}: {sum(counts.values())} examples {counts}")
        empty = [lab for lab in index["labels"][2:] if not counts.get(lab)]  # the wanted words
        if empty:
            lines.append(f"WARNING: {split} has no example of {empty}; its accuracy says nothing about them")
    if s["padded"]:
        lines.append(
            f"WARNING: {len(s['padded'])} clip(s) are shorter than {clip_ms} ms (shortest {s['shortest_ms']:.0f} ms) "
            f"and are padded with silence: {_examples(s['padded'])}"
        )
    if s["cut"]:
        where = "their first" if s["long_clips"] == "start" else "the loudest"
        lines.append(
            f"WARNING: {len(s['cut'])} clip(s) are longer than {clip_ms} ms (longest {s['longest_ms']:.0f} ms); "
            f"{where} {clip_ms} ms are kept (data.long_clips: {s['long_clips']}"
            + ("; set it to loudest if the word is not at the start" if s["long_clips"] == "start" else "")
            + f"): {_examples(s['cut'])}"
        )
    for name, missing in s["missing_listed"].items():
        lines.append(
            f"WARNING: {name} names {len(missing)} file(s) that do not exist, ignored: {_examples(missing)}; "
            "fix the list or restore the files"
        )
    return lines
