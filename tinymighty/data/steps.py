"""The data steps of the workflow (dataset, prepare, features): paths and parameters in, files out."""

from pathlib import Path

import numpy as np

from ..provenance import read_json, write_json
from ..runlog import make_log


def dataset_step(out_dir, source, path, url, sha256, synthetic, splits, seed, log_path=None, config=None):
    from .speech_commands import fetch_speech_commands
    from .synth import synthesize

    log = make_log(log_path)
    out_dir = Path(out_dir)
    if source == "synthetic":
        stats = synthesize(out_dir, seed=seed, progress=log, **synthetic, **splits)
    else:
        stats = {"path": str(fetch_speech_commands(out_dir, path=path, url=url, sha256=sha256, progress=log))}
    log(f"dataset ready in {out_dir}: {stats}")


def prepare_step(data_dir, out_json, wanted_words, percentages, seed, log_path=None, config=None):
    from .prepare import prepare_index

    log = make_log(log_path)
    index = prepare_index(data_dir, wanted_words, seed=seed, **percentages)
    for split, counts in index["counts"].items():
        log(f"{split}: {sum(counts.values())} examples {counts}")
    write_json(out_json, index, config)


def features_step(index_json, out_npz, features, augment, seed, split, log_path=None):
    from .features import compute_split

    log = make_log(log_path)
    index = read_json(index_json)
    x, y = compute_split(index, split, features, augment, seed, progress=log)
    log(f"{split}: features {x.shape}, value range {x.min():.2f}..{x.max():.2f}")
    tmp = Path(str(out_npz) + ".tmp.npz")
    np.savez_compressed(tmp, x=x, y=y, labels=np.asarray(index["labels"]))
    tmp.replace(out_npz)
