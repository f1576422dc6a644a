"""Dataset synthesis (real espeak-ng) and fetching (real tar files, real HTTP on loopback)."""

import functools
import hashlib
import http.server
import io
import re
import shutil
import tarfile
import threading
import wave
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tinymighty.data.audio import read_wav, write_wav
from tinymighty.data.layout import BACKGROUND_DIR
from tinymighty.data.speech_commands import fetch_speech_commands
from tinymighty.data.splits import which_set
from tinymighty.data.synth import synthesize

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs the Debian package espeak-ng")

SMALL = dict(
    keywords=("yes", "no"),
    unknown_words=("up", "down"),
    clips_per_keyword=12,
    clips_per_unknown_word=6,
    noise_clips=2,
    noise_seconds=10,
    seed=3,
    # Wide splits so that even 12 speakers populate all three (checked below, fixed by the seed).
    validation_percentage=30,
    testing_percentage=30,
    progress=None,
)
WORDS = {"yes": 12, "no": 12, "up": 6, "down": 6}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "sc"
    messages = []
    stats = synthesize(root, **{**SMALL, "progress": messages.append})
    return root, stats, messages


def clips(root):
    return sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.wav") if p.parent.name != BACKGROUND_DIR)


def read_list(root, split):
    return (root / f"{split}_list.txt").read_text().splitlines()


# ---------------------------------------------------------------- which_set


def expected_split(path, val, test):
    """The Speech Commands rule, spelled out independently of the implementation."""
    speaker = Path(path).name.split("_nohash_")[0]
    value = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    percentage = (value % 2**27) * (100.0 / (2**27 - 1))
    return "validation" if percentage < val else "testing" if percentage < val + test else "training"


@pytest.mark.parametrize(
    "name", ["yes/c4ca4238_nohash_0.wav", "cfcd2084_nohash_1.wav", "/a/b/eccbc87e_nohash_7.wav", "nohashhere.wav"]
)
def test_which_set_matches_the_hash_rule(name):
    for val, test in [(10, 10), (30, 30), (0, 50)]:
        assert which_set(name, val, test) == expected_split(name, val, test)


def test_which_set_known_assignments():
    # This speaker is on the official speech_commands_v0.02 validation_list.txt.
    assert which_set("right/a69b9b3e_nohash_0.wav", 10, 10) == "validation"
    assert which_set("yes/c4ca4238_nohash_0.wav", 10, 10) == "training"
    assert which_set("yes/eccbc87e_nohash_0.wav", 10, 10) == "testing"
    # Only the speaker part counts: the directory and the repetition index never change the split.
    same_speaker = [f"{w}/cfcd2084_nohash_{n}.wav" for w in ("yes", "no") for n in range(3)]
    assert {which_set(p, 10, 10) for p in same_speaker} == {"validation"}


# ---------------------------------------------------------------- synthesis


@needs_espeak
def test_layout_and_wav_format(small):
    root, stats, _ = small
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted([*WORDS, BACKGROUND_DIR])
    assert stats["words"] == WORDS and stats["clips"] == sum(WORDS.values())
    for word, count in WORDS.items():
        names = [p.name for p in (root / word).iterdir()]
        assert len(names) == count
        assert all(re.fullmatch(r"[0-9a-f]{8}_nohash_[01]\.wav", n) for n in names), names
    for rel in clips(root):
        with wave.open(str(root / rel)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 16000)
        x = read_wav(root / rel)
        assert 0.05 < np.abs(x).max() < 1.0, f"{rel} is silent or clipped"
    noises = sorted((root / BACKGROUND_DIR).iterdir())
    assert len(noises) == 2
    for p in noises:
        with wave.open(str(p)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
            assert w.getnframes() >= 10 * 16000


@needs_espeak
def test_lists_follow_which_set_and_speakers_stay_in_one_split(small):
    root, stats, _ = small
    listed = {"validation": read_list(root, "validation"), "testing": read_list(root, "testing")}
    for paths in listed.values():
        assert paths == sorted(paths) and all((root / p).is_file() for p in paths)
    split_of = {p: split for split, paths in listed.items() for p in paths}
    speakers = defaultdict(set)
    for rel in clips(root):
        split = split_of.get(rel, "training")
        assert split == expected_split(rel, 30, 30), rel
        speakers[rel.split("/")[1].split("_nohash_")[0]].add(split)
    assert all(len(s) == 1 for s in speakers.values())
    assert {s for group in speakers.values() for s in group} == {"training", "validation", "testing"}
    counted = defaultdict(int)
    for rel in clips(root):
        counted[split_of.get(rel, "training")] += 1
    assert stats["splits"] == counted


@needs_espeak
def test_same_seed_gives_identical_bytes_whatever_the_jobs(small, tmp_path):
    root, _, _ = small
    again = tmp_path / "again"
    synthesize(again, **{**SMALL, "jobs": 1})
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)

    other = tmp_path / "other"
    synthesize(other, **{**SMALL, "seed": 4, "noise_clips": 0})
    assert set(clips(other)).isdisjoint(clips(root))


@needs_espeak
def test_progress_and_summary(small):
    _, _, messages = small
    assert any("36/36" in m for m in messages)
    assert "wrote 36 clips" in messages[-1]


@needs_espeak
def test_existing_output_is_not_clobbered(small):
    root, _, _ = small
    with pytest.raises(FileExistsError, match="overwrite=True"):
        synthesize(root, **{**SMALL, "clips_per_keyword": 1, "unknown_words": ()})


def test_missing_espeak_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        synthesize(tmp_path / "x", progress=None)


# ---------------------------------------------------------------- fetching


def make_tree(root):
    """A miniature Speech Commands tree: two words and one noise file."""
    for rel in ("yes/aaaa0000_nohash_0.wav", "no/bbbb1111_nohash_0.wav", "_background_noise_/white_noise.wav"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_wav(root / rel, np.zeros(1600))
    return root


def make_tar(path, tree, arcname="."):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree, arcname=arcname)
    return path


@pytest.fixture
def archive(tmp_path):
    return make_tar(tmp_path / "sc.tar.gz", make_tree(tmp_path / "tree"))


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """Serve a folder over HTTP on 127.0.0.1 only; yields (folder, base url)."""
    served = tmp_path / "www"
    served.mkdir()
    monkeypatch.setenv("no_proxy", "127.0.0.1")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_directory_is_validated_and_linked(tmp_path):
    tree = make_tree(tmp_path / "tree")
    out = fetch_speech_commands(tmp_path / "out", path=tree, progress=None)
    assert out.is_symlink() and (out / "yes/aaaa0000_nohash_0.wav").is_file()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="does not look like Speech Commands"):
        fetch_speech_commands(tmp_path / "out2", path=tmp_path / "empty", progress=None)


@pytest.mark.parametrize("arcname", [".", "speech_commands_v0.02"])
def test_fetch_tar_gz(tmp_path, arcname):
    archive = make_tar(tmp_path / "sc.tar.gz", make_tree(tmp_path / "tree"), arcname)
    out = fetch_speech_commands(tmp_path / "out", path=archive, progress=None)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == [
        "_background_noise_/white_noise.wav",
        "no/bbbb1111_nohash_0.wav",
        "yes/aaaa0000_nohash_0.wav",
    ]
    assert not list(tmp_path.glob("*.partial*"))


def test_fetch_url_with_checksum(tmp_path, archive, http_root):
    served, base = http_root
    shutil.copy(archive, served / "sc.tar.gz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    messages = []
    out = fetch_speech_commands(tmp_path / "out", url=f"{base}/sc.tar.gz", sha256=digest, progress=messages.append)
    assert (out / "no/bbbb1111_nohash_0.wav").is_file()
    assert any("download:" in m and "MB" in m for m in messages)
    assert not list(tmp_path.glob("*.part"))


def test_fetch_file_url_from_a_local_mirror(tmp_path, archive):
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    out = fetch_speech_commands(tmp_path / "out", url=archive.as_uri(), sha256=digest, progress=None)
    assert (out / "yes/aaaa0000_nohash_0.wav").is_file()


def test_fetch_url_wrong_checksum_leaves_nothing(tmp_path, archive, http_root):
    served, base = http_root
    shutil.copy(archive, served / "sc.tar.gz")
    actual = hashlib.sha256(archive.read_bytes()).hexdigest()
    url = f"{base}/sc.tar.gz"
    before = set(tmp_path.iterdir())
    with pytest.raises(ValueError) as err:
        fetch_speech_commands(tmp_path / "out", url=url, sha256="0" * 64, progress=None)
    assert "0" * 64 in str(err.value) and actual in str(err.value) and url in str(err.value)
    assert set(tmp_path.iterdir()) == before


def test_fetch_url_requires_sha256(tmp_path):
    with pytest.raises(ValueError, match="sha256"):
        fetch_speech_commands(tmp_path / "out", url="http://127.0.0.1:9/sc.tar.gz", progress=None)


def evil_tar(path, kind):
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("yes/aaaa0000_nohash_0.wav")
        ok.size = 4
        tar.addfile(ok, io.BytesIO(b"RIFF"))
        bad = tarfile.TarInfo({"traversal": "../evil", "absolute": "/tmp/evil", "symlink": "yes/link"}.get(kind, "dev"))
        if kind == "symlink":
            bad.type, bad.linkname = tarfile.SYMTYPE, "../../outside"
        elif kind == "device":
            bad.type = tarfile.CHRTYPE
        bad.size = 0 if kind in ("symlink", "device") else 4
        tar.addfile(bad, io.BytesIO(b"evil"))
    return path


@pytest.mark.parametrize("kind", ["traversal", "absolute", "symlink", "device"])
def test_unsafe_tar_is_rejected(tmp_path, kind):
    archive = evil_tar(tmp_path / "evil.tar.gz", kind)
    with pytest.raises(ValueError, match="refusing to extract"):
        fetch_speech_commands(tmp_path / "out", path=archive, progress=None)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("*.partial*"))
