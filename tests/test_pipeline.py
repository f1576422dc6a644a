"""The keyword spotter end to end (issue 10): raw audio -> features -> network -> recognizer, on real components.

The recognizer's C (firmware/pipeline/recognizer.c, built with the host gcc) against its Python reference; the
firmware's pipeline on QEMU mps2-an386 and in the native build, with the hand-written network in
tests/fixtures/kws_model (four "band energy" outputs, mirrored in numpy) and with a real TinyConv run by TFLM;
the bad-input errors; the workflow's pipeline results (slow, on the tiny run).
"""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinymighty.config import ConfigError
from tinymighty.config import validate as validate_config
from tinymighty.data import micro_frontend as mf
from tinymighty.data.audio import fit_length
from tinymighty.device import PSRAM_BASE, DeviceError, HostBackend, QemuBackend, build_firmware, connect
from tinymighty.device import pipeline as P
from tinymighty.device import recognizer as R
from tinymighty.errors import InputError
from tinymighty.npio import quantize_input

REPO = Path(__file__).resolve().parent.parent
PIPELINE_SRC = REPO / "firmware" / "pipeline"
KWS = Path(__file__).parent / "fixtures" / "kws_model"
TINY_MODEL = Path(__file__).parent / "fixtures" / "tiny_model"
SCHEMA = REPO / "rules" / "schema" / "config.schema.yaml"
FE = mf.FrontendConfig()
FEATURES = {"kind": "micro", "sample_rate": 16000, "clip_ms": 1000, "window_ms": 30, "stride_ms": 20, "channels": 40}
IN_SCALE, IN_ZP = 0.10196078568696976, -128  # tests/fixtures/kws_model/model.h
TOOLS = ("arm-none-eabi-gcc", "qemu-system-arm", "make", "gcc")
needs_tools = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS), reason=f"needs {', '.join(TOOLS)}")


def kws_twin(windows: np.ndarray) -> np.ndarray:
    """numpy twin of tests/fixtures/kws_model/model.c."""
    w = np.asarray(windows, np.int64).reshape(len(windows), 49, 40) - IN_ZP
    acc = w[:, 24:, :].reshape(len(w), 25, 4, 10).sum(axis=(1, 3))
    return np.clip(((acc * 3) >> 8) - 148, -128, 127).astype(np.int8)


def tone_recording(seconds=12, seed=0) -> np.ndarray:
    """Noise with tone bursts: 3 kHz and 6 kHz make the fixture's keyword classes (2 and 3) win, 500 Hz not."""
    rng = np.random.default_rng(seed)
    n = 16000 * seconds
    t = np.arange(n) / 16000
    x = rng.normal(0, 300, n)
    for k, f in enumerate([3000, 6000, 500, 3000, 6000]):
        a = 16000 + k * 32000
        x[a : a + 8000] += 8000 * np.sin(2 * np.pi * f * t[a : a + 8000])
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


KWS_SETTINGS = R.Settings(
    interval=4, window=3, threshold=200, suppression=5, keywords=0b1100, classes=4, zero_point=-128
)


# ---- the recognizer: C against the Python reference --------------------------------------------------------


class _RcSettings(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("window", "threshold", "suppression", "keywords", "classes")] + [
        ("zero_point", ctypes.c_int32)
    ]


class _RcEvent(ctypes.Structure):
    _fields_ = [("cls", ctypes.c_uint32), ("score", ctypes.c_int32)]


@pytest.fixture(scope="module")
def rc_lib(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    lib = tmp_path_factory.mktemp("rc") / "librc.so"
    subprocess.run(
        ["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-o", str(lib),
         str(PIPELINE_SRC / "recognizer.c")],
        check=True,
    )  # fmt: skip
    return ctypes.CDLL(str(lib))


def c_recognize(lib, outputs: np.ndarray, s: R.Settings) -> list[tuple[int, int, int]]:
    settings = _RcSettings(s.window, s.threshold, s.suppression, s.keywords, s.classes, s.zero_point)
    assert lib.rc_check(ctypes.byref(settings)) == 0
    state = ctypes.create_string_buffer(4096)
    lib.rc_reset(state)
    events, ev = [], _RcEvent()
    for i, out in enumerate(np.ascontiguousarray(outputs, np.int8)):
        if lib.rc_update(state, ctypes.byref(settings), out.ctypes.data_as(ctypes.c_void_p), ctypes.byref(ev)):
            events.append((i, ev.cls, ev.score))
    return events


def test_recognizer_c_equals_the_python_reference(rc_lib):
    rng = np.random.default_rng(5)
    fired = 0
    for trial in range(60):
        classes = int(rng.integers(2, 9))
        window = int(rng.integers(1, 33))
        zp = int(rng.choice([-128, -100, 0]))
        s = R.Settings(
            interval=4,
            window=window,
            threshold=int(rng.integers(0, window * (128 - zp))),
            suppression=int(rng.integers(0, 20)),
            keywords=int(rng.integers(1, 1 << classes)),
            classes=classes,
            zero_point=zp,
        )
        # Runs of one class winning, as a network's outputs go, plus noise and ties.
        n = 400
        winner = np.repeat(rng.integers(0, classes, n // 20 + 1), 20)[:n]
        out = rng.integers(-128, -60, (n, classes))
        out[np.arange(n), winner] = rng.integers(0, 128, n)
        if trial % 5 == 0:
            out[:, :] = out[:, :1]  # all tied: the first class wins
        out = out.astype(np.int8)
        want = R.recognize(out, s)
        assert c_recognize(rc_lib, out, s) == want, s
        fired += len(want)
    assert fired > 50  # the comparison covered events, not only silence


def test_recognizer_rules():
    s = R.Settings(interval=4, window=2, threshold=100, suppression=3, keywords=0b100, classes=3, zero_point=-128)
    quiet, kw, other = [-128, -128, -128], [-128, -128, -60], [-60, -128, -128]
    # warm-up: nothing before the window is full; then fires once, stays quiet for 3, fires again
    outputs = [kw, kw, kw, kw, kw, kw, kw, other, other, quiet]
    assert R.recognize(np.array(outputs, np.int8), s) == [(1, 2, 136), (5, 2, 136)]
    # a non-keyword class that wins the window never fires
    assert R.recognize(np.array([other] * 6, np.int8), s) == []


# ---- settings and config validation ------------------------------------------------------------------------

RECOGNIZER = {"interval_strides": 4, "average_window_ms": 400, "threshold": 0.6, "suppression_ms": 1000}
LABELS = ["_silence_", "_unknown_", "yes", "no"]


def test_settings_from_the_config():
    s = R.settings(RECOGNIZER, FEATURES, LABELS, 1 / 256, -128)
    assert (s.interval, s.window, s.suppression, s.keywords, s.classes, s.zero_point) == (4, 5, 13, 0b1100, 4, -128)
    # average probability above 0.6 over 5 inferences <=> window sum of (out + 128) above 0.6 * 5 * 256 = 768
    assert s.threshold == 768
    assert R.settings(dict(RECOGNIZER, suppression_ms=960), FEATURES, LABELS, 1 / 256, -128).suppression == 12


def _config(**recognizer):
    import yaml

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["recognizer"].update(recognizer)
    return cfg


@pytest.mark.parametrize(
    "key, value",
    [("threshold", 1.5), ("threshold", 0), ("interval_strides", 9), ("interval_strides", 0), ("suppression_ms", -1)],
)
def test_recognizer_settings_out_of_range_fail_validation(key, value):
    with pytest.raises(ConfigError, match=rf"recognizer\.{key}"):
        validate_config(_config(**{key: value}), SCHEMA)


def test_recognizer_window_longer_than_the_firmware_takes_fails():
    cfg = _config(average_window_ms=5000)
    validate_config(cfg, SCHEMA)  # in the schema's range ...
    with pytest.raises(ConfigError, match=r"recognizer\.average_window_ms .* at most 2560 ms"):
        R.check_config(cfg)  # ... but 62 inferences of 80 ms
    R.check_config(_config())


@pytest.mark.parametrize(
    "recognizer, expected",
    [({"threshold": 1.2}, "recognizer.threshold"), ({"average_window_ms": 4000}, "recognizer.average_window_ms")],
)
def test_workflow_stops_bad_recognizer_settings_before_any_job(tmp_path, recognizer, expected):
    import yaml
    from conftest import TINY, snakemake

    cfg = yaml.safe_load(TINY.read_text())
    cfg["recognizer"] = recognizer
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", configfile=path, check=False)
    assert proc.returncode != 0 and expected in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_detections_are_scored_with_a_tolerance_window():
    placements = [
        {"start_s": 1.0, "end_s": 2.0, "label": "yes", "keyword": True},
        {"start_s": 4.0, "end_s": 5.0, "label": "no", "keyword": True},
        {"start_s": 7.0, "end_s": 8.0, "label": "_unknown_", "keyword": False},
        {"start_s": 10.0, "end_s": 11.0, "label": "yes", "keyword": True},
    ]
    events = [
        {"time_s": 1.9, "label": "yes"},  # hit
        {"time_s": 2.4, "label": "yes"},  # same keyword again: false alarm
        {"time_s": 5.6, "label": "yes"},  # inside "no"'s tolerance, wrong word
        {"time_s": 7.5, "label": "no"},  # during an unknown word
    ]
    d = R.score_detections(events, placements, 0.75)
    assert (d["keywords"], d["hits"], d["misses"], d["false_alarms"], d["wrong_keyword"]) == (3, 1, 2, 3, 1)
    assert [e["result"] for e in d["events"]] == ["hit", "false alarm", "wrong keyword", "false alarm"]


# ---- bad input ---------------------------------------------------------------------------------------------


def test_pcm_of_the_wrong_rate_or_length_fails_naming_both():
    pcm = np.zeros(16000 * 2, np.int16)
    with pytest.raises(InputError, match=r"8000 Hz.*16000 Hz"):
        P.check_pcm(pcm, 8000, FE, stream=True)
    with pytest.raises(InputError, match=r"32001 samples.*320-sample strides.*at least 16000"):
        P.check_pcm(np.zeros(32001, np.int16), 16000, FE, stream=True)
    with pytest.raises(InputError, match=r"15680 samples.*at least 16000"):
        P.check_pcm(np.zeros(15680, np.int16), 16000, FE, stream=True)
    with pytest.raises(InputError, match="16-bit"):
        P.check_pcm(pcm.astype(np.float32), 16000, FE, stream=True)
    assert P.check_pcm(pcm, 16000, FE, stream=True).shape == (32000,)
    assert P.check_pcm(np.zeros((3, 100), np.int16), 16000, FE, stream=False).shape == (3, 100)


# ---- the firmware -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kws_builds(tmp_path_factory):
    if any(shutil.which(t) is None for t in TOOLS):
        pytest.skip(f"needs {', '.join(TOOLS)}")
    root = tmp_path_factory.mktemp("kws")
    tables = mf.DEFAULT_TABLES_DIR
    return {
        "elf": build_firmware(KWS, root / "mps2", kernels_dir="", features=tables),
        "host": build_firmware(KWS, root / "host", kernels_dir="", features=tables, board="host"),
    }


@needs_tools
@pytest.mark.parametrize("backend", ["qemu", "host"])
def test_stream_equals_the_host_reference(kws_builds, backend, tmp_path):
    """Outputs of every inference and every event equal the host's: same C frontend streamed with its state
    carried along, the network's twin, the recognizer's reference."""
    pcm = tone_recording()
    host = P.host_stream(pcm, FE, IN_SCALE, IN_ZP, kws_twin, KWS_SETTINGS)
    assert len(host["events"]) >= 2 and {e[2] for e in host["events"]} == {2, 3}
    make = QemuBackend if backend == "qemu" else HostBackend
    exe = kws_builds["elf" if backend == "qemu" else "host"]
    with connect(make(exe, preload=pcm.tobytes()), tmp_path / "log") as client:
        r = P.run_stream(client, PSRAM_BASE, len(pcm), 16000, KWS_SETTINGS)
        memory = client.memory()
        client.exit(0)
    assert r["ends"] == host["ends"] and r["columns"] == host["columns"] == len(pcm) // 320 - 1
    np.testing.assert_array_equal(r["outputs"], host["outputs"])
    assert r["events"] == host["events"]
    assert r["strides"] == len(pcm) // 320 and r["inferences"] == len(host["ends"])
    if backend == "qemu":
        per_stride = r["ticks"]["pre_ticks"] * 40 / r["strides"]
        print(f"\npre-processing per stride on the M4: {per_stride:,.0f} instructions")
        assert 15_000 < per_stride < 32_000
        assert 0 < memory["stack_used"] < memory["stack_size"]


@needs_tools
@pytest.mark.parametrize("length", [1, 479, 8000, 15999, 16000, 24000])
def test_clips_are_fitted_as_the_host_fits_them(kws_builds, length, tmp_path):
    """A clip shorter than a second is zero-padded (a longer one cut) exactly as the host's fit_length does
    before its features: the device's outputs from raw audio equal the network on the host's features."""
    rng = np.random.default_rng(length)
    audio = np.clip(rng.normal(0, 0.2, (3, length)), -1, 1).astype(np.float32)
    audio[:, : length // 2] *= 0.05
    host_x = mf.extract(np.stack([fit_length(a, 16000) for a in audio]), FEATURES)
    want = kws_twin(quantize_input(host_x, {"dtype": np.int8, "quantization": (IN_SCALE, IN_ZP)}).reshape(3, -1))
    pcm = mf.pcm16(audio)
    with connect(QemuBackend(kws_builds["elf"], preload=pcm.tobytes()), tmp_path / "log") as client:
        r = P.run_clips(client, PSRAM_BASE, 3, length, 16000)
        client.exit(0)
    np.testing.assert_array_equal(r["outputs"], want)
    np.testing.assert_array_equal(r["predictions"], want.argmax(axis=1))


@needs_tools
def test_device_refuses_pcm_of_the_wrong_rate_or_length(kws_builds, tmp_path):
    pcm = tone_recording(seconds=2)
    with connect(HostBackend(kws_builds["host"], preload=pcm.tobytes()), tmp_path / "log") as client:
        with pytest.raises(
            DeviceError, match=r"ERR ARGS the PCM is 8000 Hz but this firmware's features take 16000 Hz"
        ):
            P.run_stream(client, PSRAM_BASE, len(pcm), 8000, KWS_SETTINGS)
        with pytest.raises(DeviceError, match=r"ERR ARGS the PCM has 16001 samples .* whole 320-sample strides"):
            P.run_stream(client, PSRAM_BASE, 16001, 16000, KWS_SETTINGS)
        with pytest.raises(DeviceError, match=r"ERR ARGS the PCM has 15680 samples .* at least 16000"):
            P.run_stream(client, PSRAM_BASE, 15680, 16000, KWS_SETTINGS)
        with pytest.raises(DeviceError, match=r"ERR ARGS the PCM is 44100 Hz"):
            P.run_clips(client, PSRAM_BASE, 1, 16000, 44100)
        with pytest.raises(DeviceError, match="ERR RANGE"):
            P.run_stream(client, PSRAM_BASE + 15 * 2**20, 320 * 6600, 16000, KWS_SETTINGS)
        with pytest.raises(DeviceError, match="ERR ARGS"):
            P.run_stream(client, PSRAM_BASE, len(pcm), 16000, R.Settings(9, 3, 450, 5, 0b1100, 4, -128))
        # version 1 still works on the same image: LOAD + RUN
        x = np.random.default_rng(0).integers(-128, 128, 49 * 40).astype(np.int8)
        np.testing.assert_array_equal(client.infer(x)["output"], kws_twin(x[None])[0])
        client.exit(0)


@needs_tools
def test_pipe_reports_the_feature_extractor_apart(kws_builds, tmp_path):
    with connect(QemuBackend(kws_builds["elf"]), tmp_path / "log") as client:
        info = client.identify()
        pipe = P.pipe_info(client, FEATURES)
        memory = client.memory()
        client.exit(0)
    assert info["proto"] == 2
    assert pipe["fe"] == mf.config_hash(FE) and (pipe["frames"], pipe["channels"], pipe["stride"]) == (49, 40, 320)
    assert pipe["fe_state"] == mf.frontend(FE).state_bytes
    assert 100 < pipe["fe_stack"] < 1024
    # the stack measurement gives the board's paint back: MEM's high-water mark is not the whole stack
    assert memory["stack_used"] < memory["stack_size"]
    split = P.image_split(Path(kws_builds["elf"]).parent / "firmware.map")
    size = P.feature_extractor_size(split, pipe)
    assert size["flash_tables"] > 3000 and size["flash_code"] > 1000
    assert split["variables"]["pipeline/pipeline.o:pl_fe"] == pipe["fe_state"]
    # issue 10's must-haves for the feature extractor
    assert size["flash"] <= 10_240 and size["ram"] <= 4_096
    print(f"\nfeature extractor: flash {size['flash']} B, RAM {size['ram']} B (stack {pipe['fe_stack']} B)")


@needs_tools
def test_image_without_features_has_no_pipeline(tmp_path):
    exe = build_firmware(TINY_MODEL, tmp_path / "host", kernels_dir="", board="host")
    with connect(HostBackend(exe), tmp_path / "log") as client:
        with pytest.raises(DeviceError, match="no feature extractor"):
            P.pipe_info(client)
        client.exit(0)


@needs_tools
def test_wrong_feature_tables_are_refused(kws_builds, tmp_path):
    with connect(HostBackend(kws_builds["host"]), tmp_path / "log") as client:
        with pytest.raises(DeviceError, match="feature tables are for config"):
            P.pipe_info(client, dict(FEATURES, channels=32))
        client.exit(0)


@needs_tools
def test_another_features_config_gets_its_own_tables(tmp_path):
    """features.channels 32: the build takes generated tables; PIPE says so, and a network that does not take
    49 x 32 features is refused by name."""
    features = dict(FEATURES, channels=32)
    tables = P.feature_tables(features, tmp_path / "tables")
    assert tables != mf.DEFAULT_TABLES_DIR and (tables / "fe_tables.c").is_file()
    exe = build_firmware(KWS, tmp_path / "host", kernels_dir="", features=tables, board="host")
    pcm = tone_recording(seconds=2)
    with connect(HostBackend(exe, preload=pcm.tobytes()), tmp_path / "log") as client:
        pipe = P.pipe_info(client, features)
        assert (pipe["channels"], pipe["fe"]) == (32, mf.config_hash(mf.FrontendConfig(channels=32)))
        with pytest.raises(DeviceError, match=r"ERR MODEL the network takes 1960 int8 values .* 49x32 = 1568"):
            P.run_stream(client, PSRAM_BASE, len(pcm), 16000, KWS_SETTINGS)
        client.exit(0)


@needs_tools
def test_real_tinyconv_streams_like_tflm_on_the_host(tmp_path):
    """A real (untrained) TinyConv through the code generator, with the features on the device: the outputs of
    every inference on a recording equal TFLM's on the host's streamed features."""
    codegen = pytest.importorskip("tinymighty.codegen")
    pytest.importorskip("tflite_micro")
    from tinymighty import tfutil
    from tinymighty.model import architectures as models
    from tinymighty.model import convert

    tfutil.make_deterministic(0)
    calib = np.random.default_rng(0).uniform(0, 26, size=(32, 49, 40)).astype(np.float32)
    tflite = tmp_path / "tinyconv.tflite"
    tflite.write_bytes(convert.to_int8(models.build("tinyconv", (49, 40), 4), calib, 32))
    info = codegen.generate(tflite, tmp_path / "model")
    elf = build_firmware(tmp_path / "model", tmp_path / "build", features=mf.DEFAULT_TABLES_DIR)
    pcm = tone_recording(seconds=4, seed=3)
    s = R.Settings(4, 2, 0, 2, 0b1100, 4, info["output_zero_point"])
    host = P.host_stream(
        pcm, FE, info["input_scale"], info["input_zero_point"], lambda w: codegen.tflm_outputs(tflite, w), s
    )
    with connect(QemuBackend(elf, preload=pcm.tobytes()), tmp_path / "log") as client:
        r = P.run_stream(client, PSRAM_BASE, len(pcm), 16000, s)
        client.exit(0)
    np.testing.assert_array_equal(r["outputs"], host["outputs"])
    assert r["events"] == host["events"]


# ---- the workflow (slow) -------------------------------------------------------------------------------------


def test_workflow_runs_the_keyword_spotter(tiny_run):
    results = tiny_run / "results"
    summary = json.loads((results / "pipeline" / "summary.json").read_text())
    assert {r["variant"] for r in summary["rows"]} >= {"ptq_int8"}
    rec = json.loads((results / "pipeline" / "recording.json").read_text())
    assert rec["seconds"] >= 60 and rec["keywords"] > 0 and rec["unknown_words"] > 0
    for r in summary["rows"]:
        assert r["events_equal"] and r["outputs_equal"], r["label"]
        assert r["clips"]["matches_host"] and r["clips"]["n"] > 0, r["label"]
        assert r["detection_device"] == r["detection_host"]
        assert 0 < r["core_share"] < 1 and r["feature_extractor"]["flash"] <= 10_240
    html = (results / "report.html").read_text()
    assert 'id="pipeline"' in html and "not measured here" not in html
