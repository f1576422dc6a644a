"""Every bad input and interruption of issue 15's table, through the entry point a user reaches it by: each gets
an error that names the input (file, key, URL, port, transcript) and says what to do, in seconds, with the
library's own exception chained as the cause. Nothing crashes with a bare library error or a signal, hangs,
leaks a process or a temporary folder, or loses a result. (Killing whole workflow runs is in
tests/test_resume.py, which is slow.)"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zlib
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, TINY, snakemake

from tinymighty.config import ConfigError, check_config, load_yaml, validate
from tinymighty.data import features
from tinymighty.data.audio import read_wav, write_wav
from tinymighty.data.prepare import prepare_index
from tinymighty.data.speech_commands import fetch_speech_commands
from tinymighty.data.steps import prepare_step
from tinymighty.device import DeviceClient, DeviceError, Transcript, frame, unframe
from tinymighty.errors import InputError, TinyMightyError

SCHEMA = REPO / "rules" / "schema" / "config.schema.yaml"
TIMEOUT = 15.0  # the bound for declaring a device dead


def _config():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in yaml.safe_load(TINY.read_text()).items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    return config


def _riff(path, tag=1, bits=16, channels=1, rate=16000, samples=b"", extensible=False):
    """A WAV file written by hand, for formats the wave module cannot write."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * block, block, bits)
    if extensible:
        guid = struct.pack("<H", tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt += struct.pack("<HHI", 22, bits, 0) + guid
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples)) + samples
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return Path(path)


def _dataset(root, speakers=12, words=("yes", "no", "up"), seconds=1.0, lists=True):
    rng = np.random.default_rng(0)
    for w in words:
        for s in range(speakers):
            write_wav(root / w / f"{s:08x}_nohash_0.wav", 0.1 * rng.standard_normal(int(16000 * seconds)))
    write_wav(root / "_background_noise_" / "noise.wav", 0.1 * rng.standard_normal(3 * 16000))
    if lists:
        (root / "validation_list.txt").write_text("yes/00000000_nohash_0.wav\nno/00000001_nohash_0.wav\n")
        (root / "testing_list.txt").write_text("yes/00000002_nohash_0.wav\nno/00000003_nohash_0.wav\n")
    return root


def _prepare(root, tmp_path, **clips):
    out, log = tmp_path / "index.json", tmp_path / "prepare.log"
    prepare_step(root, out, ["yes", "no"], {}, 0, clips=clips or None, log_path=log)
    return out, log.read_text()


def _chained(err):
    """The exception is the project's and keeps its cause (if a library raised one)."""
    assert isinstance(err, TinyMightyError), type(err)
    return err.__cause__


# ---------------------------------------------------------------- audio and datasets


@pytest.mark.parametrize(
    "content, says",
    [
        (b"", "empty (0 bytes)"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "cut short"),
        (b"RIFF\x24\x00", "cut inside its RIFF header"),
        (b"hello, I am a text file\n", "not a WAV file"),
    ],
    ids=["zero-length", "cut-in-header", "cut-in-riff", "text-file"],
)
def test_broken_wav_is_named_when_the_dataset_is_prepared(tmp_path, content, says):
    root = _dataset(tmp_path / "sc")
    bad = root / "yes" / "00000005_nohash_0.wav"
    bad.write_bytes(content)
    with pytest.raises(InputError) as err:
        read_wav(bad)
    assert str(bad) in str(err.value) and says in str(err.value)
    with pytest.raises(InputError) as err:
        _prepare(root, tmp_path)
    assert str(bad) in str(err.value) and says in str(err.value) and "cannot be used" in str(err.value)


def test_float_and_wide_integer_wavs_are_read_as_16_bit_ones(tmp_path):
    x = np.round(np.sin(np.linspace(0, 60, 16000)) * 20000).astype(np.int16)
    ref = _riff(tmp_path / "16.wav", samples=x.astype("<i2").tobytes())
    as24 = (x.astype(np.int32) << 8).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    variants = {
        "24": _riff(tmp_path / "24.wav", bits=24, samples=as24),
        "32": _riff(tmp_path / "32.wav", bits=32, samples=(x.astype("<i4") << 16).tobytes()),
        "f32": _riff(tmp_path / "f32.wav", tag=3, bits=32, samples=(x / 32768.0).astype("<f4").tobytes()),
        "f32-extensible": _riff(
            tmp_path / "fx.wav", tag=3, bits=32, samples=(x / 32768.0).astype("<f4").tobytes(), extensible=True
        ),
    }
    want = read_wav(ref)
    assert want.dtype == np.float32 and np.array_equal(want, x / np.float32(32768))
    for name, path in variants.items():
        np.testing.assert_array_equal(read_wav(path), want, err_msg=name)


@pytest.mark.parametrize(
    "kind, says",
    [
        (dict(tag=3, bits=64), "64-bit float"),
        (dict(bits=8), "8-bit integer PCM"),
        (dict(channels=2), "2 ch"),
        (dict(rate=44100), "44100 Hz"),
        (dict(tag=7, bits=8), "mu-law"),
    ],
    ids=["float64", "8-bit", "stereo", "44.1k", "mu-law"],
)
def test_unsupported_wav_formats_are_refused_naming_file_and_format(tmp_path, kind, says):
    path = _riff(tmp_path / "x.wav", samples=bytes(64), **kind)
    with pytest.raises(InputError) as err:
        read_wav(path)
    msg = str(err.value)
    assert str(path) in msg and says in msg and "sox" in msg


def test_a_wanted_word_without_clips_fails(tmp_path):
    root = _dataset(tmp_path / "sc")
    (root / "cat").mkdir()
    with pytest.raises(InputError) as err:
        prepare_index(root, ["yes", "cat"])
    assert str(root / "cat") in str(err.value) and "data.wanted_words" in str(err.value)


@pytest.mark.parametrize("missing", ["testing_list.txt", "validation_list.txt"])
def test_one_split_list_missing_fails(tmp_path, missing):
    root = _dataset(tmp_path / "sc")
    (root / missing).unlink()
    with pytest.raises(InputError) as err:
        prepare_index(root, ["yes", "no"])
    msg = str(err.value)
    assert missing in msg and "delete" in msg and str(root) in msg


def test_long_clips_are_reported_and_cut_where_configured(tmp_path):
    root = _dataset(tmp_path / "sc")
    t = np.arange(5 * 16000) / 16000
    word = np.where((t >= 3.0) & (t < 3.6), 0.8 * np.sin(2 * np.pi * 440 * t), 0.0)
    clip = "yes/00000004_nohash_0.wav"
    write_wav(root / clip, word)

    out, log = _prepare(root, tmp_path / "start")
    assert "1 clip(s) are longer than 1000 ms (longest 5000 ms); their first 1000 ms are kept" in log
    assert clip in log and "set it to loudest" in log

    out, log = _prepare(root, tmp_path / "loudest", long_clips="loudest")
    assert "the loudest 1000 ms are kept (data.long_clips: loudest)" in log
    index = yaml.safe_load(out.read_text())
    entry = next(e for entries in index["splits"].values() for e in entries if e["file"] == clip)
    assert 2.6 * 16000 <= entry["offset"] <= 3.0 * 16000
    split = next(s for s, entries in index["splits"].items() if entry in entries)
    index["splits"][split] = [entry]
    no_augmentation = {"time_shift_ms": 0, "background_frequency": 0, "background_volume": 0}
    audio, _ = features.load_audio(index, split, no_augmentation, 16000, 1000, 0)
    assert np.abs(audio[0]).max() > 0.5  # the word, not the silence before it


def test_sanity_pass_reports_counts_short_clips_and_missing_list_entries(tmp_path):
    root = _dataset(tmp_path / "sc")
    write_wav(root / "no" / "00000006_nohash_0.wav", np.full(1600, 0.1))  # 0.1 s
    with open(root / "testing_list.txt", "a") as f:
        f.write("yes/deadbeef_nohash_0.wav\n")
    _, log = _prepare(root, tmp_path)
    for split in ("training", "validation", "testing"):
        assert f"{split}: " in log and "'yes': " in log
    assert "1 clip(s) are shorter than 1000 ms (shortest 100 ms) and are padded with silence" in log
    assert "no/00000006_nohash_0.wav" in log
    assert "testing_list.txt names 1 file(s) that do not exist, ignored: yes/deadbeef_nohash_0.wav" in log


def test_percentages_that_leave_no_training_split(tmp_path):
    config = _config()
    config["data"].update(validation_percentage=60, testing_percentage=40)
    with pytest.raises(ConfigError, match=r"data.validation_percentage \(60\) \+ data.testing_percentage \(40\)"):
        check_config(config)
    with pytest.raises(InputError, match="leave no training clips; keep their sum below 100"):
        prepare_index(_dataset(tmp_path / "sc", lists=False), ["yes", "no"], 60, 40)


def test_final_epochs_must_leave_epochs_at_the_first_rate():
    config = _config()
    config["train"].update(epochs=4, final_epochs=4)
    with pytest.raises(ConfigError, match=r"train.final_epochs \(4\) must be fewer than train.epochs \(4\)"):
        check_config(config)


def test_stride_longer_than_window_is_refused_before_the_frontend_aborts():
    config = _config()
    config["features"].update(window_ms=30, stride_ms=40)
    with pytest.raises(ConfigError, match=r"features.stride_ms \(40\) is longer than features.window_ms \(30\)"):
        check_config(config)
    cfg = dict(config["features"])
    with pytest.raises(InputError, match="features.stride_ms"):
        features.extract(np.zeros((1, 16000), np.float32), cfg)  # would be SIGABRT in TF's micro frontend
    config["features"].update(stride_ms=20.5)
    with pytest.raises(ConfigError, match="whole number of milliseconds"):
        check_config(config)


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda q, p: q["sweep"].update(methods=[]), "quantization.sweep.methods is empty"),
        (lambda q, p: q.update(mixed=[{"weights": 4, "activations": 4}]), "is the sweep point 4"),
        (lambda q, p: p["structured"].update(keep=[8]), "pruning.structured.keep [8] must be between 1 and"),
        (lambda q, p: p["structured"].update(compare_keep=9), "pruning.structured.compare_keep [9]"),
    ],
    ids=["sweep-without-methods", "mixed-is-a-sweep-point", "keep-all", "compare-keep-all"],
)
def test_cross_field_rules_of_the_studies(edit, key):
    config = _config()
    edit(config["quantization"], config["pruning"])
    with pytest.raises(ConfigError) as err:
        check_config(config)
    assert key in str(err.value)


# ---------------------------------------------------------------- config files


def test_yaml_syntax_error_names_file_line_and_fix(tmp_path):
    bad = tmp_path / "my.yaml"
    bad.write_text("seed: 7\ndata:\n  source: synthetic\n   wanted_words: [yes\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(bad)
    msg = str(err.value)
    assert f"{bad}, line 4, column 16" in msg and "wanted_words: [yes" in msg and "indent with spaces" in msg
    assert err.value.__cause__ is not None
    # Plain snakemake, as users type it: the workflow profile checks every --configfile before Snakemake
    # parses it (Snakemake's own message names neither file nor line), from the repository or elsewhere.
    for cwd, snakefile in ((REPO, []), (tmp_path, ["-s", str(REPO / "Snakefile")])):
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", "-n", *snakefile, "--configfile", str(bad)],
            cwd=cwd,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 1 and f"{bad}, line 4, column 16" in proc.stderr, proc.stderr


def test_unquoted_yes_names_file_line_and_says_to_quote(tmp_path):
    path = tmp_path / "words.yaml"
    path.write_text(TINY.read_text().replace('wanted_words: ["yes", "no"]', "wanted_words:\n    - yes\n    - no"))
    config = _config()
    config["data"]["wanted_words"] = yaml.safe_load(path.read_text())["data"]["wanted_words"]
    with pytest.raises(ConfigError) as err:
        validate(config, SCHEMA, [REPO / "config.yaml", path])
    line = path.read_text().splitlines().index("    - yes") + 1
    msg = str(err.value)
    assert f"{path}, line {line}: data.wanted_words[0]: is the boolean True" in msg
    assert 'quote the word, e.g. - "yes"' in msg
    # Through plain snakemake the message is all the user sees: no Snakefile line, no traceback frames.
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(path)], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 1 and f"{path}, line {line}: data.wanted_words[0]" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and 'File "' not in proc.stderr


@pytest.mark.parametrize(
    "overlay, says",
    [
        ("train: {epochs: 4, final_epochs: 4}", "train.final_epochs (4) must be fewer than train.epochs (4)"),
        ("recognizer: {average_window_ms: 5000, interval_strides: 1}", "recognizer.average_window_ms (5000) is 250"),
        ("pipeline: {variants: [nope]}", "pipeline.variants ['nope'] names no deployed variant"),
    ],
    ids=["Snakefile", "recognizer", "pipeline.smk"],
)
def test_a_config_check_anywhere_in_the_workflow_prints_the_message_alone(tmp_path, overlay, says):
    path = tmp_path / "config.yaml"
    path.write_text(overlay + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(path)], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 1 and f"ConfigError: {says}" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and 'File "' not in proc.stderr


def test_bad_config_through_snakemake_names_file_and_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(TINY.read_text().replace("epochs: 2,", "epochs: many,"))
    proc = snakemake(tmp_path, "-n", configfile=path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"{path}, line" in out and "train.epochs: 'many' is not of type 'integer'" in out
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- models for codegen


@pytest.mark.parametrize(
    "content, says",
    [
        (b"", "empty (0 bytes)"),
        (b"\x89HDF\r\n\x1a\n" + bytes(600), "HDF5 file (a Keras .h5 model?)"),
        (b"not a model at all", "not a TFLite flatbuffer"),
        ("truncated", "truncated or corrupt"),
    ],
    ids=["empty", "h5", "text", "truncated"],
)
def test_codegen_refuses_files_that_are_not_tflite(tmp_path, content, says):
    from tinymighty.codegen import generate

    path = tmp_path / "model.tflite"
    if content == "truncated":
        content = (REPO / "tests/fixtures/pinned/tinyconv_ptq_int8.tflite").read_bytes()[:5000]
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        generate(path, tmp_path / "out")
    assert str(path) in str(err.value) and says in str(err.value)
    assert not (tmp_path / "out" / "model.c").exists()


# ---------------------------------------------------------------- downloads and archives


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_from_a_closed_port_names_the_url(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    url = f"http://127.0.0.1:{_closed_port()}/sc.tar.gz"
    start = time.monotonic()
    with pytest.raises(InputError) as err:
        fetch_speech_commands(tmp_path / "out", url=url, sha256="0" * 64, progress=None)
    assert time.monotonic() - start < 5
    assert url in str(err.value) and "refused" in str(err.value).lower() and "data.path" in str(err.value)
    assert _chained(err.value) is not None and not list(tmp_path.glob("*.part"))


def test_download_from_a_server_that_never_answers(tmp_path, monkeypatch):
    from tinymighty.data import speech_commands

    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setattr(speech_commands, "DOWNLOAD_STALL_SECONDS", 1)  # 15 s in real use
    mute = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel does), never answers
    url = f"http://127.0.0.1:{mute.getsockname()[1]}/sc.tar.gz"
    start = time.monotonic()
    with pytest.raises(InputError) as err:
        fetch_speech_commands(tmp_path / "out", url=url, sha256="0" * 64, progress=None)
    mute.close()
    assert time.monotonic() - start < 5
    assert url in str(err.value) and "within 1 s" in str(err.value)
    assert not list(tmp_path.glob("*.part"))


def _truncated_archive(tmp_path):
    full = io.BytesIO()
    with tarfile.open(fileobj=full, mode="w:gz") as tar:
        rng = np.random.default_rng(0)
        for i in range(8):
            write_wav(tmp_path / "w.wav", 0.1 * rng.standard_normal(16000))
            data = (tmp_path / "w.wav").read_bytes()
            info = tarfile.TarInfo(f"yes/{i:08x}_nohash_0.wav")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cut = tmp_path / "www" / "sc.tar.gz"
    cut.parent.mkdir()
    cut.write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    return cut


def test_truncated_archive_with_matching_checksum(tmp_path, monkeypatch):
    cut = _truncated_archive(tmp_path)
    with pytest.raises(InputError) as err:
        fetch_speech_commands(tmp_path / "a", path=cut, progress=None)
    assert str(cut) in str(err.value) and "truncated or corrupt" in str(err.value)
    assert _chained(err.value) is not None and not (tmp_path / "a").exists()

    monkeypatch.setenv("no_proxy", "127.0.0.1")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(http.server.SimpleHTTPRequestHandler, directory=str(cut.parent))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # An archive that is whole but holds no dataset is as unusable, and is not kept either.
    with tarfile.open(cut.parent / "notes.tar.gz", "w:gz") as tar:
        tar.add(cut, arcname="notes.txt")
    try:
        for archive, says in ((cut, "truncated or corrupt"), (cut.parent / "notes.tar.gz", "holds no Speech Commands")):
            url = f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"
            digest = hashlib.sha256(archive.read_bytes()).hexdigest()
            with pytest.raises(InputError, match=says) as err:
                fetch_speech_commands(tmp_path / "b", url=url, sha256=digest, progress=None)
            assert url in str(err.value) and "data.sha256" in str(err.value) and not (tmp_path / "b").exists()
            assert not list(tmp_path.glob("b.*")), "an unusable download whose checksum matches would be reused"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- devices


class ScriptedDevice:
    """A device on a loopback socket that answers every request with `reply(payload)` (bytes)."""

    def __init__(self, reply):
        self.reply = reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.listener.accept()
        buf = b""
        try:
            while data := conn.recv(4096):
                buf += data
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    payload = unframe(raw)
                    if payload:
                        conn.sendall(self.reply(payload))
        except OSError:
            pass


def _client(device, log, **kwargs):
    from tinymighty.device import SerialBackend

    backend = SerialBackend(device.url)
    return DeviceClient(backend.open_port(), Transcript(log), name=backend.name, **kwargs)


def test_id_reply_missing_fields_names_them_the_port_and_the_transcript(tmp_path):
    device = ScriptedDevice(lambda p: frame(f"OK ID req={zlib.crc32(p.encode()):08X} proto=1 in=16"))
    client = _client(device, tmp_path / "id.log")
    with pytest.raises(DeviceError) as err:
        client.identify()
    msg = str(err.value)
    assert "lacks the field(s) fw, board, model, tick, out" in msg and device.url in msg
    assert str(tmp_path / "id.log") in msg and "rebuild and flash" in msg


@pytest.mark.slow
def test_dead_device_is_declared_dead_within_15_s(tmp_path):
    """A silent device, one sending binary line noise, and one flooding without newlines, each with the
    timeouts a measurement uses (run side by side: each takes the 8 s it is given)."""
    rng = np.random.default_rng(0)
    behaviours = {
        "silent": lambda p: b"",
        "noise": lambda p: rng.integers(0, 256, 150, dtype=np.uint8).tobytes().replace(b"\n", b"") + b"\n",
        "flood": lambda p: rng.integers(0, 256, 100_000, dtype=np.uint8).tobytes().replace(b"\n", b"\x00"),
    }
    results = {}

    def run(name):
        device = ScriptedDevice(behaviours[name])
        client = _client(device, tmp_path / f"{name}.log")  # the defaults a measurement uses
        start = time.monotonic()
        try:
            client.identify()
            results[name] = ("answered", 0, device.url)
        except DeviceError as err:
            results[name] = (str(err), time.monotonic() - start, device.url)

    threads = [threading.Thread(target=run, args=(name,)) for name in behaviours]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for name, (msg, elapsed, url) in results.items():
        assert elapsed < TIMEOUT, f"{name}: {elapsed:.1f} s"
        assert "no valid reply within 8 s of the first request" in msg and url in msg, msg
        assert str(tmp_path / f"{name}.log") in msg
    assert len(results) == 3


@pytest.fixture(scope="module")
def fixture_elf(tmp_path_factory):
    from tinymighty.device import build_firmware

    if any(
        subprocess.run(["which", t], capture_output=True).returncode for t in ("arm-none-eabi-gcc", "qemu-system-arm")
    ):
        pytest.skip("needs arm-none-eabi-gcc and qemu-system-arm (./tbm install)")
    return build_firmware(REPO / "tests/fixtures/tiny_model", tmp_path_factory.mktemp("elf"), kernels_dir="")


CHILD = """
import sys
from tinymighty.device import QemuBackend, connect
backend = QemuBackend(sys.argv[1], preload=bytes(64), timeout=120)
with connect(backend, sys.argv[2]) as client:
    client.identify()
    print(backend.proc.pid, flush=True)
    client.calibrate(2_000_000_000)  # about 10 s of emulation: killed long before
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's reaping is missing


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_qemu_dies_with_the_measuring_process(fixture_elf, tmp_path, sig):
    temp = set(Path(tempfile.gettempdir()).glob("tm-qemu-*"))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(fixture_elf), str(tmp_path / "t.log")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    qemu = int(child.stdout.readline())
    assert _alive(qemu)
    start = time.monotonic()
    child.send_signal(sig)
    child.wait(10)
    while _alive(qemu) and time.monotonic() - start < 5:
        time.sleep(0.05)
    assert not _alive(qemu), f"QEMU {qemu} outlived its parent ({sig.name})"
    assert set(Path(tempfile.gettempdir()).glob("tm-qemu-*")) == temp  # nothing of QEMU's on disk


# ---------------------------------------------------------------- the workflow's own reporting


@pytest.mark.slow
def test_failing_job_prints_its_cause_with_plain_snakemake(tmp_path):
    """profiles/default (read by plain `snakemake`) shows the failed job's log, which holds the cause."""
    not_a_dataset = tmp_path / "empty"
    not_a_dataset.mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"source": "speech_commands", "path": str(not_a_dataset)}}))
    proc = snakemake(tmp_path / "run", "--cores", "1", "results/data/index.json", configfile=[TINY, cfg], check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"{not_a_dataset} does not look like Speech Commands" in out
    assert "dataset failed: InputError" in out  # from the log, which --show-failed-logs printed
    assert "Traceback" not in out  # the project's error is the message alone, not a crash


def test_a_job_log_keeps_the_traceback_of_an_unexpected_error_only():
    from tinymighty.data.steps import _failure_logged

    cut_short = InputError("x.wav: cut short")
    cut_short.__cause__ = EOFError("12 bytes missing")  # the log keeps the cause the traceback used to show
    logs = {}
    for err, traceback_logged in ((cut_short, False), (KeyError("a bug"), True)):
        lines = logs[type(err)] = []
        with pytest.raises(type(err)), _failure_logged(lines.append, "prepare"):
            raise err
        assert lines[0].startswith(f"prepare failed: {type(err).__name__}")
        assert ("Traceback" in "\n".join(lines)) == traceback_logged
    assert logs[InputError] == ["prepare failed: InputError: x.wav: cut short\n(cause: EOFError: 12 bytes missing)"]


def test_only_unexpected_errors_print_a_traceback():
    def stderr_of(raise_):
        code = f"from tinymighty.errors import InputError\nraise {raise_}"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stderr

    assert stderr_of("InputError('x.wav: cut short')") == "InputError: x.wav: cut short\n"
    assert "Traceback" in stderr_of("ValueError('a bug')")


HOLD_LOCK = """
import sys, time
from tinymighty.runlock import clear_stale_locks
clear_stale_locks(sys.argv[1])
print("holding", flush=True)
time.sleep(60)
"""


def _other_run(workdir):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(workdir)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_lock_left_by_a_killed_run_is_removed_but_a_live_runs_lock_is_not(tmp_path):
    from tinymighty.runlock import clear_stale_locks

    locks = tmp_path / ".snakemake" / "locks"
    run = _other_run(tmp_path)  # a live run of the workflow, with Snakemake's locks written
    locks.mkdir(parents=True)
    for name in ("0.input.lock", "0.output.lock"):
        (locks / name).write_text("results/report.html\n")
    check = [
        sys.executable,
        "-c",
        f"from tinymighty.runlock import clear_stale_locks as c; print(c({str(tmp_path)!r}))",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    assert subprocess.run(check, capture_output=True, text=True, env=env).stdout.strip() == "[]"
    assert len(list(locks.iterdir())) == 2  # the live run keeps its locks
    run.send_signal(signal.SIGKILL)  # ... until it is killed
    run.wait()
    messages = []
    assert clear_stale_locks(tmp_path, log=messages.append) == ["0.input.lock", "0.output.lock"]
    assert not list(locks.iterdir()) and "left by a run that was killed" in messages[0]
