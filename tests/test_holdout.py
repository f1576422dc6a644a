"""Held-out voices, figures a class mix cannot flatter, and datasets that change under the same path."""

import csv
import json
import os
import shutil
import tarfile

import numpy as np
import pytest
import yaml
from conftest import TINY, snakemake

from tinymighty.data import manifest
from tinymighty.data.audio import read_wav, write_wav
from tinymighty.data.prepare import holdout_index
from tinymighty.data.synth import synthesize, synthesize_holdout, voice_pools
from tinymighty.model.evaluate import classification

needs_synths = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("festival") and shutil.which("sox")),
    reason="needs the Debian packages espeak-ng, sox, festival festvox-kdlpc16k festvox-kallpc16k festvox-us-slt-hts",
)
LABELS = ["_silence_", "_unknown_", "yes", "no"]
WORDS = dict(keywords=("yes", "no"), unknown_words=("nose", "yet", "stop"))


def synthesis(root):
    return json.loads((root / "synthesis.json").read_text())


def speakers(root):
    return {p.name.split("_nohash_")[0] for p in root.glob("*/*.wav")}


# ---------------------------------------------------------------- the held-out voices


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("holdout")
    train = dict(WORDS, clips_per_keyword=16, clips_per_unknown_word=4, noise_clips=1, noise_seconds=10, seed=5)
    synthesize(tmp / "train", progress=None, **train)
    messages = []
    synthesize_holdout(
        tmp / "held", clips_per_keyword=6, clips_per_unknown_word=2, seed=5, progress=messages.append, **WORDS
    )
    return tmp / "train", tmp / "held", messages


@needs_synths
def test_held_out_voices_never_reach_the_training_data(two_sets):
    train, held, messages = two_sets
    trained = {c["voice"]["family"] for c in synthesis(train)["clips"].values()}
    heard = {c["voice"]["name"] for c in synthesis(held)["clips"].values()}
    assert trained == {"espeak-ng", "festival-ked", "festival-accented"}  # both synthesisers, no CMU voice
    assert heard == {"kal_diphone", "cmu_us_slt_arctic_hts"}  # only the CMU voices that flite also has
    assert speakers(train).isdisjoint(speakers(held))
    assert synthesis(train)["held_out"] == ["festival-cmu"]
    assert any("synthesize_holdout: 18/18 clips" in m for m in messages)
    # realistic conditions on every clip: a noise floor, never digital silence around the word
    for c in synthesis(train)["clips"].values():
        assert -90 <= c["conditions"]["floor_dbfs"] <= -55
    for wav in train.glob("*/*.wav"):  # even at -90 dBFS, about one LSB, most samples are not zero
        x = read_wav(wav)
        assert np.count_nonzero(x == 0) < 0.5 * len(x), wav


@needs_synths
def test_held_out_set_is_one_test_split_indexed_like_the_dataset(two_sets):
    _, held, _ = two_sets
    listed = (held / "testing_list.txt").read_text().split()
    assert sorted(listed) == sorted(p.relative_to(held).as_posix() for p in held.glob("*/*.wav")) and len(listed) == 18
    assert (held / "validation_list.txt").read_text() == ""
    index = holdout_index(held, ["yes", "no"])
    assert index["labels"] == LABELS
    assert index["counts"]["testing"] == {"_silence_": 0, "_unknown_": 6, "yes": 6, "no": 6}
    assert index["splits"]["training"] == index["splits"]["validation"] == []


@needs_synths
def test_holdout_is_byte_reproducible(two_sets, tmp_path):
    _, held, _ = two_sets
    synthesize_holdout(
        tmp_path / "again", clips_per_keyword=6, clips_per_unknown_word=2, seed=5, jobs=1, progress=None, **WORDS
    )
    files = sorted(p.relative_to(held) for p in held.rglob("*") if p.is_file())
    assert all((held / f).read_bytes() == (tmp_path / "again" / f).read_bytes() for f in files)


@needs_synths
def test_the_order_of_families_in_the_config_does_not_change_the_data(tmp_path):
    small = dict(WORDS, clips_per_keyword=6, clips_per_unknown_word=1, noise_clips=0, seed=2, progress=None)
    synthesize(tmp_path / "a", families={"espeak-ng": 0.4, "festival-ked": 0.3, "festival-accented": 0.3}, **small)
    synthesize(tmp_path / "b", families={"festival-accented": 0.3, "festival-ked": 0.3, "espeak-ng": 0.4}, **small)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.wav"))
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.wav"))
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)


@needs_synths
def test_holdout_by_synthesiser_voice_or_accent():
    train, held = voice_pools({"espeak-ng": 1, "festival-ked": 1}, ["festival"])
    assert set(train) == {"espeak-ng"} and set(held) == {"festival-ked", "festival-accented", "festival-cmu"}
    train, held = voice_pools({"espeak-ng": 1}, ["en-gb-scotland"])
    assert not any(n.startswith("en-gb-scotland+") for n in train["espeak-ng"])
    assert held["espeak-ng"] and all(n.startswith("en-gb-scotland+") for n in held["espeak-ng"])
    with pytest.raises(ValueError, match=r"data.holdout \['marvin'\] names no installed voice"):
        voice_pools({"espeak-ng": 1}, ["marvin"])
    with pytest.raises(ValueError, match="holds out every training voice"):
        voice_pools({"festival-ked": 1}, ["festival-ked"])


# ---------------------------------------------------------------- figures a class mix cannot flatter


def test_balanced_accuracy_and_unknown_false_accepts():
    # 90 keywords all right, 10 unknown words of which 6 are taken for "yes" and 1 for silence.
    y = [2] * 45 + [3] * 45 + [1] * 10
    p = [2] * 45 + [3] * 45 + [1, 1, 1, 0, 2, 2, 2, 2, 2, 2]
    res = classification(y, p, LABELS)
    assert res["accuracy"] == pytest.approx(0.93)
    assert res["balanced_accuracy"] == pytest.approx((1 + 1 + 0.3) / 3)  # silence is absent: not averaged
    assert res["unknown_false_accept"] == pytest.approx(0.6)  # silence is a rejection, not a false accept
    assert res["class_mix"] == {"_silence_": 0.0, "_unknown_": 0.1, "yes": 0.45, "no": 0.45}
    assert classification([2, 3], [2, 2], LABELS)["unknown_false_accept"] is None


# ---------------------------------------------------------------- datasets that change under the same path


def make_dataset(root):
    for rel in ("yes/aaaa0000_nohash_0.wav", "no/bbbb1111_nohash_0.wav", "up/cccc2222_nohash_0.wav"):
        write_wav(root / rel, np.full(1600, 0.1))
    (root / "testing_list.txt").write_text("no/bbbb1111_nohash_0.wav\n")
    (root / "validation_list.txt").write_text("")
    return root


def test_manifest_changes_with_the_content_not_otherwise(tmp_path):
    root = make_dataset(tmp_path / "sc")
    out = tmp_path / "manifest.json"
    assert manifest.refresh(root, out)
    stamp = out.stat().st_mtime_ns
    assert not manifest.refresh(root, out) and out.stat().st_mtime_ns == stamp  # unchanged: untouched
    (root / ".snakemake_timestamp").write_text("")  # hidden files are not the dataset's
    assert not manifest.refresh(root, out)

    clip = root / "yes/aaaa0000_nohash_0.wav"
    before = clip.stat()
    write_wav(clip, np.full(1600, 0.2))  # same size; put the old mtime back: the change time still moves
    os.utime(clip, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert manifest.refresh(root, out)
    (root / "testing_list.txt").write_text("no/bbbb1111_nohash_0.wav\nup/cccc2222_nohash_0.wav\n")
    assert manifest.refresh(root, out)
    write_wav(root / "up/dddd3333_nohash_0.wav", np.zeros(1600))
    assert manifest.refresh(root, out)
    (root / "up/dddd3333_nohash_0.wav").unlink()
    assert manifest.refresh(root, out)
    assert json.loads(out.read_text())["files"] == 5


def test_manifest_of_an_archive_replaced_at_the_same_path(tmp_path):
    root = make_dataset(tmp_path / "sc")
    archive = tmp_path / "sc.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname=".")
    out = tmp_path / "manifest.json"
    assert manifest.refresh(archive, out) and not manifest.refresh(archive, out)
    other = tmp_path / "other.tar.gz"
    shutil.copy2(archive, other)  # same size and mtime: only the inode tells
    other.replace(archive)
    assert manifest.refresh(archive, out)


def _config(tmp_path, edit, name="config.yaml"):
    cfg = yaml.safe_load(TINY.read_text())
    edit(cfg)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_path_and_url_together_fail_naming_both(tmp_path):
    cfg = _config(
        tmp_path,
        lambda c: c["data"].update(
            source="speech_commands", path=str(tmp_path), url="https://example.invalid/sc.tar.gz", sha256="0" * 64
        ),
    )
    proc = snakemake(tmp_path / "run", "-n", configfile=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "data.path" in out and "data.url" in out, out[-2000:]


def test_the_dataset_job_log_says_why_it_failed(tmp_path):
    (tmp_path / "empty").mkdir()
    cfg = _config(tmp_path, lambda c: c["data"].update(source="speech_commands", path=str(tmp_path / "empty")))
    proc = snakemake(tmp_path / "run", "--cores", "1", "results/data/dataset", configfile=cfg, check=False)
    assert proc.returncode != 0
    log = (tmp_path / "run" / "results" / "logs" / "dataset.log").read_text()
    assert "dataset failed: InputError" in log and "does not look like Speech Commands" in log
    assert "Traceback" not in log  # the project's own error: the message is the answer


def _planned(workdir, cfg, target):
    out = snakemake(workdir, "-n", target, "--quiet", "rules", configfile=cfg).stdout
    return {line.split()[0] for line in out.splitlines() if len(line.split()) == 2 and line.split()[1].isdigit()} - {
        "total"
    }


def test_editing_a_clip_reruns_features_and_training(tiny_run, tmp_path):
    """A real-format dataset at data.path: an unchanged dataset reruns nothing; an edited clip or list reruns
    the dataset, its features and the training."""
    data = tmp_path / "sc"
    # Without the marker Snakemake leaves in its own directory() outputs: a user's dataset has none.
    shutil.copytree(tiny_run / "results" / "data" / "dataset", data, ignore=shutil.ignore_patterns(".snakemake*"))
    cfg = _config(tmp_path, lambda c: c["data"].update(source="speech_commands", path=str(data)))
    work, target = tmp_path / "run", "results/models/tinyconv/float.h5"
    snakemake(work, "--cores", "2", target, configfile=cfg)
    assert _planned(work, cfg, target) == set()
    assert not list(data.rglob(".snakemake*"))  # the workflow left the user's dataset as it was

    clip = next((data / "yes").glob("*.wav"))
    write_wav(clip, read_wav(clip) * 0.5)
    assert {"dataset", "prepare", "features", "train"} <= _planned(work, cfg, target)
    snakemake(work, "--cores", "2", target, configfile=cfg)
    assert _planned(work, cfg, target) == set()
    with open(data / "testing_list.txt", "a") as f:
        f.write(f"{clip.relative_to(data).as_posix()}\n")
    assert {"dataset", "prepare", "features", "train"} <= _planned(work, cfg, target)


# ---------------------------------------------------------------- the default run's figures


def test_holdout_figures_reach_metrics_summary_and_report(tiny_run):
    res = tiny_run / "results"
    for variant in ("float", "ptq_int8"):
        m = json.loads((res / "variants" / "tinyconv" / variant / "metrics.json").read_text())
        h = m["holdout"]
        assert h["voices"] == ["festival-cmu"] and h["n"] > 0
        assert {"balanced_accuracy", "unknown_false_accept", "per_class"} <= set(h) and "balanced_accuracy" in m
        assert h["per_class"]["_silence_"]["support"] == 0 and h["per_class"]["yes"]["support"] > 0
    rows = list(csv.DictReader((res / "summary.csv").open()))
    ptq = next(r for r in rows if r["variant"] == "ptq_int8")
    assert float(ptq["holdout_balanced_accuracy"]) >= 0 and ptq["unknown_false_accept"] != ""
    html = (res / "report.html").read_text()
    assert "Voices never heard" in html and "voices never heard</th>" in html


@pytest.mark.slow
def test_no_holdout_means_no_holdout_jobs(tmp_path):
    cfg = _config(tmp_path, lambda c: c["data"].update(holdout={"voices": []}))
    planned = _planned(tmp_path / "run", cfg, "all")
    assert "evaluate" in planned and not planned & {"holdout_dataset", "evaluate_holdout", "holdout_features"}
