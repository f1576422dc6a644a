"""The data steps of the workflow (dataset, prepare, features): paths and parameters in, files out."""

import traceback
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import TinyMightyError, describe
from ..provenance import read_json, write_json
from ..runlog import make_log


@contextmanager
def _failure_logged(log, job):
    """Whatever stops the job goes to its log too: the log says why the job failed. The project's own errors
    name the input and the fix, so only an unexpected one adds its traceback."""
    try:
        yield
    except BaseException as err:
        log(f"{job} failed: {describe(err)}")
        if not isinstance(err, TinyMightyError):
            log("".join(traceback.format_exception(err)).rstrip())
        raise


def dataset_step(
    out_dir, source, path, url, sha256, synthetic, splits, seed, holdout=(), log_path=None, config=None, manifest=None
):
    """The training dataset: synthesised (leaving out the held-out voices) or the real Speech Commands."""
    from .speech_commands import fetch_speech_commands
    from .synth import synthesize

    log = make_log(log_path)
    out_dir = Path(out_dir)
    with _failure_logged(log, "dataset"):
        if manifest:
            m = read_json(manifest)
            log(f"dataset at {m['path']}: {m['kind']}, {m['files']} files, {m['bytes']} bytes, digest {m['digest']}")
        if source == "synthetic":
            stats = synthesize(out_dir, seed=seed, holdout=holdout, progress=log, **synthetic, **splits)
        else:
            stats = {"path": str(fetch_speech_commands(out_dir, path=path, url=url, sha256=sha256, progress=log))}
    log(f"dataset ready in {out_dir}: {stats}")


def holdout_step(out_dir, voices, keywords, unknown_words, sizes, synthetic, seed, log_path=None):
    """The held-out voices' set: synthesised whatever the training data are, never part of them."""
    from .synth import synthesize_holdout

    log = make_log(log_path)
    with _failure_logged(log, "holdout dataset"):
        stats = synthesize_holdout(
            out_dir,
            voices,
            keywords,
            unknown_words,
            seed=seed,
            progress=log,
            **sizes,
            **{k: v for k, v in synthetic.items() if k in ("conditions", "jobs")},
        )
    log(f"held-out set ready in {out_dir}: {stats}")


def prepare_holdout_step(data_dir, out_json, wanted_words, log_path=None, config=None):
    from .prepare import holdout_index

    log = make_log(log_path)
    index = holdout_index(data_dir, wanted_words)
    log(f"held-out voices: {len(index['splits']['testing'])} clips {index['counts']['testing']}")
    write_json(out_json, index, config)


def prepare_step(data_dir, out_json, wanted_words, percentages, seed, clips=None, log_path=None, config=None):
    """The split index, after the sanity pass (clips: sample_rate, clip_ms and long_clips)."""
    from .prepare import prepare_index
    from .sanity import check_clips, report_lines

    log = make_log(log_path)
    with _failure_logged(log, "prepare"):
        index = prepare_index(data_dir, wanted_words, seed=seed, **percentages)
        index["sanity"] = check_clips(index, **(clips or {}))
    for line in report_lines(index):
        log(line)
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
