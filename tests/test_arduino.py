"""The Arduino sketch for the Nano 33 BLE Sense (issue 14) on real components: the export, the nRF52840 link check
(arm-none-eabi-gcc and g++), and the sketch's glue built on the host against the stand-in Arduino core, run as a
board on a real pty and driven by the real collector: the protocol suite, ports that do not exist or are busy,
another protocol version or model, a board that resets mid-run, and live mode against the pipeline's STREAM."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import threading
import tty
from pathlib import Path

import numpy as np
import pytest
import serial
from test_device import FIXTURE, fixture_reference
from test_pipeline import KWS, KWS_SETTINGS, tone_recording

from tinymighty import budgets
from tinymighty.data import micro_frontend as mf
from tinymighty.device import (
    PSRAM_BASE,
    BoardReset,
    DeviceClient,
    DeviceError,
    FirmwareBuildError,
    HostBackend,
    SerialBackend,
    Transcript,
    arduino,
    build_firmware,
    connect,
    frame,
    measure,
    unframe,
)
from tinymighty.device.pipeline import run_stream

REPO = Path(__file__).resolve().parent.parent
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "make", "gcc", "g++")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS), reason=f"needs {', '.join(TOOLS)} (./tbm install)"
)
FIXTURE_HASH = "fixture-dense16x4"
KWS_LABELS = ["_silence_", "_unknown_", "yes", "no"]


@pytest.fixture(scope="module")
def sketch(tmp_path_factory):
    """The hand-written 16->4 fixture as a sketch (no live mode: it does not take the features), linked and
    built on the host."""
    root = tmp_path_factory.mktemp("sketch")
    folder = arduino.export_sketch(FIXTURE, root / "export")
    return {"dir": folder, "link": arduino.link_check(folder, root / "link"), "exe": arduino.build_host(folder, root)}


@pytest.fixture(scope="module")
def inputs():
    return np.random.default_rng(3).integers(-128, 128, size=(12, 16), dtype=np.int8)


# ---- the export and the nRF52840 link check ----------------------------------------------------------------


def test_sketch_holds_the_firmwares_own_sources(sketch):
    folder = sketch["dir"]
    assert folder.name == "kws" and (folder / "kws.ino").is_file()
    firmware = REPO / "firmware"
    for name in ("main.c", "proto.c", "pipeline.c", "recognizer.c", "fe_frontend.c", "tm_conv.c", "board.h"):
        original = next(firmware.rglob(name))
        assert (folder / name).read_bytes() == original.read_bytes(), name
    assert (folder / "model.c").read_bytes() == (FIXTURE / "model.c").read_bytes()
    assert (folder / "fe_tables.c").read_bytes() == (mf.DEFAULT_TABLES_DIR / "fe_tables.c").read_bytes()
    options = (folder / "tm_sketch.h").read_text()
    assert "#define TM_PIPELINE 1" in options and "#define TM_LIVE 0" in options
    assert not arduino.has_live_mode(folder)  # the fixture does not take the features' window


def test_nrf52840_link_check(sketch):
    r = sketch["link"]
    assert (r["flash_origin"], r["flash_budget"], r["ram_budget"]) == (
        budgets.SKETCH_FLASH_ORIGIN,
        budgets.SKETCH_FLASH_BYTES,
        budgets.SKETCH_RAM_BYTES,
    )
    assert r["flash_model"] == 80 and 0 < r["flash_image"] == r["flash_total"] < 64 * 1024
    assert 0 < r["stack_bound"] <= r["stack_size"] and r["ram_reserved"] == r["stack_size"] + r["ram_static"]
    # The glue was compiled against the stand-in Arduino API, in protocol mode (the fixture has no live mode).
    built = Path(r["elf"]).parent
    assert "TM_LIVE in 0 against" in (built / "glue_syntax.txt").read_text()
    header = subprocess.run(["arm-none-eabi-objdump", "-h", r["elf"]], capture_output=True, text=True).stdout
    text = re.search(r"\.text\s+[0-9a-f]+\s+([0-9a-f]+)", header)
    assert int(text.group(1), 16) == 0x10000  # after the Arduino bootloader


def test_budgets_are_the_linker_scripts():
    ld = (REPO / "firmware" / "board" / "nano33ble" / "link.ld").read_text()
    assert f"FLASH_BUDGET = {budgets.SKETCH_FLASH_BYTES // 1024}K;" in ld
    assert f"RAM_BUDGET = {budgets.SKETCH_RAM_BYTES // 1024}K;" in ld
    assert f"ORIGIN = {budgets.SKETCH_FLASH_ORIGIN:#010x}" in ld and "ASSUMED, not measured" in ld


@pytest.mark.parametrize(
    "knob, message",
    [
        pytest.param(
            "-DTM_FIXTURE_EXTRA_WEIGHTS=1000000", "FLASH BUDGET EXCEEDED", marks=pytest.mark.slow
        ),  # fits 1 MB, not the 960 KB after the bootloader
        ("-DTM_FIXTURE_ARENA_SIZE=220000", "RAM BUDGET EXCEEDED"),  # fits 256 KB, not what the core leaves
    ],
)
def test_sketch_budget_errors_come_from_the_linker(sketch, tmp_path, knob, message):
    with pytest.raises(FirmwareBuildError) as err:
        arduino.link_check(sketch["dir"], tmp_path / "nano", extra_cflags=knob)
    text = str(err.value)
    assert message in text and "overflowed by" in text and "budget: FLASH 983040, RAM 196608 bytes" in text
    build_firmware(FIXTURE, tmp_path / "mps2", kernels_dir="", extra_cflags=knob)  # the whole part holds it


# ---- the glue on the host: the protocol suite over a pty -----------------------------------------------------


def test_sketch_glue_is_measured_over_a_pty(sketch, inputs, tmp_path):
    with arduino.StandinBoard(sketch["exe"]) as board:
        r = measure(
            sketch["link"]["elf"],
            {"kind": "serial", "url": board.port},
            inputs,
            n_bench=5,
            log_path=tmp_path / "log",
            expected_model=FIXTURE_HASH,
            sizes=sketch["link"],
        )
    np.testing.assert_array_equal(r["outputs"], fixture_reference(inputs))
    info = r["identify"]
    assert (info["board"], info["tick"], info["tick_hz"], info["model"]) == (
        "nano33ble_standin",
        "cycles",
        64_000_000,
        FIXTURE_HASH,
    )
    assert r["timing"]["unit"] == "ticks" and r["timing"]["n"] == 5 and r["calibration"] is None
    # The board cannot tell its RAM from the core's: the link check's figures stand in, and say so.
    ram, link = r["ram"], sketch["link"]
    assert ram["measured"] == "link" and ram["static"] == link["ram_static"] and ram["budget"] == link["ram_budget"]
    assert r["flash"]["total"] == link["flash_total"]
    log = (tmp_path / "log").read_text()
    assert "LOAD 0 " in log and "BATCH" not in log  # nothing is preloadable on the board: inputs go by LOAD


def test_sketch_glue_answers_bad_requests_with_errors(sketch):
    proc = subprocess.run(
        [sketch["exe"]],
        env={**os.environ, "TM_STANDIN_SERIAL": "stdio"},
        capture_output=True,
        timeout=20,
        input=b"".join(
            [
                b"ID*00\n",
                b"ID\n",
                frame("FLY"),
                frame("LOAD 10 0011223344556677"),
                frame("BENCH x"),
                frame("RUN 0x21000000"),  # nothing is preloadable on the board
                b"X" * 300 + b"\n",
                frame("ID"),
            ]
        ),
    )
    replies = [unframe(line) for line in proc.stdout.splitlines()]
    assert None not in replies, proc.stdout
    assert replies[0] == "READY proto=2 board=nano33ble_standin"
    codes = [r.split()[1] for r in replies[1:]]
    assert codes == ["CHECKSUM", "CHECKSUM", "UNKNOWN", "RANGE", "ARGS", "RANGE", "TOOLONG", "ID"]
    assert "tick=cycles tick_hz=64000000" in replies[-1]


class PtyProxy:
    """A second pty between the client and the board's, passing each line through `reply` or `request`
    (index, line) -> line: a noisy cable, or a board with other firmware."""

    def __init__(self, board_port, reply=lambda i, line: line, request=lambda i, line: line):
        self.master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.board = serial.Serial(board_port, timeout=0.05)
        self._stop = False
        threading.Thread(target=self._pump_requests, args=(request,), daemon=True).start()
        threading.Thread(target=self._pump_replies, args=(reply,), daemon=True).start()

    def _lines(self, read, write, edit):
        buf, index = b"", 0
        while not self._stop:
            try:
                buf += read()
            except (OSError, TypeError, serial.SerialException):  # closed under the thread
                return
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line:
                    line, index = edit(index, line), index + 1
                write(line + b"\n")

    def _pump_requests(self, edit):
        def read():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            return os.read(self.master, 4096) if ready else b""

        self._lines(read, self.board.write, edit)

    def _pump_replies(self, edit):
        self._lines(lambda: self.board.read(4096), lambda data: os.write(self.master, data), edit)

    def close(self):
        self._stop = True
        self.board.close()


def _flip(line: bytes) -> bytes:
    damaged = bytearray(line)
    damaged[len(damaged) // 2] ^= 0x01
    return bytes(damaged)


def test_damaged_lines_through_the_pty_are_retried(sketch, tmp_path):
    with arduino.StandinBoard(sketch["exe"]) as board:
        # The first ID request is damaged (the board answers ERR CHECKSUM), then the first OK reply: two retries,
        # then success.
        oks = []

        def first_ok(i, line):
            if line.startswith(b"OK"):
                oks.append(line)
            return _flip(line) if len(oks) == 1 and line.startswith(b"OK") else line

        proxy = PtyProxy(board.port, reply=first_ok, request=lambda i, line: _flip(line) if i == 0 else line)
        client = DeviceClient(SerialBackend(proxy.path).open_port(), Transcript(tmp_path / "log"))
        assert client.identify()["model"] == FIXTURE_HASH
        client.transcript.close()
        proxy.close()
    log = (tmp_path / "log").read_text()
    assert "ERR CHECKSUM" in log and "damaged reply line" in log and log.count("retrying") == 2


def test_another_protocol_version_fails_naming_both(sketch, tmp_path):
    def version_3(i, line):
        payload = unframe(line)
        if payload and payload.startswith("OK ID "):
            return frame(payload.replace(" proto=2 ", " proto=3 ")).rstrip(b"\n")
        return line

    with arduino.StandinBoard(sketch["exe"]) as board:
        proxy = PtyProxy(board.port, reply=version_3)
        with pytest.raises(DeviceError) as err:
            measure(sketch["link"]["elf"], {"kind": "serial", "url": proxy.path}, np.zeros((1, 16), np.int8), 1,
                    tmp_path / "log", sizes=sketch["link"])  # fmt: skip
        proxy.close()
    text = str(err.value)
    assert "protocol version 3" in text and "version 2" in text and proxy.path in text and "flash" in text


def test_another_model_fails_naming_both(sketch, tmp_path):
    with arduino.StandinBoard(sketch["exe"]) as board:
        with pytest.raises(DeviceError) as err:
            measure(sketch["link"]["elf"], {"kind": "serial", "url": board.port}, np.zeros((1, 16), np.int8), 1,
                    tmp_path / "log", expected_model="0123456789abcdef", sizes=sketch["link"])  # fmt: skip
    text = str(err.value)
    assert f"runs model {FIXTURE_HASH}" in text and "model is 0123456789abcdef" in text and "Arduino sketch" in text


def test_board_that_resets_mid_run_is_measured_again(sketch, inputs, tmp_path):
    # The 8th line the board reads resets it: the second RUN (after the blank line, ID, LOAD, BENCH, LOAD, RUN, LOAD).
    with arduino.StandinBoard(sketch["exe"], env={"TM_STANDIN_RESET_AFTER": "8"}) as board:
        r = measure(sketch["link"]["elf"], {"kind": "serial", "url": board.port}, inputs, 3, tmp_path / "log",
                    expected_model=FIXTURE_HASH, sizes=sketch["link"])  # fmt: skip
    np.testing.assert_array_equal(r["outputs"], fixture_reference(inputs))
    log = (tmp_path / "log").read_text()
    # The boot banner may come before the port is opened (and be flushed); the reset's comes mid-run.
    assert log.count("< b'READY proto=2") >= 1 and "RESET: the device reset during RUN" in log
    assert "measuring again from the start" in log


def test_board_that_keeps_resetting_fails_clearly(sketch, inputs, tmp_path):
    with arduino.StandinBoard(sketch["exe"], env={"TM_STANDIN_RESET_AFTER": "8,8"}) as board:
        with pytest.raises(BoardReset) as err:
            measure(sketch["link"]["elf"], {"kind": "serial", "url": board.port}, inputs, 3, tmp_path / "log",
                    sizes=sketch["link"])  # fmt: skip
    text = str(err.value)
    assert "reset during" in text and "nothing from before the reset is used" in text and board.port in text


def test_port_that_does_not_exist_names_it_and_the_fix():
    with pytest.raises(DeviceError) as err:
        SerialBackend("/dev/ttyACM_tinymighty_nope").open_port()
    text = str(err.value)
    assert "there is no /dev/ttyACM_tinymighty_nope" in text and "firmware.port" in text


def test_busy_port_names_it_and_the_fix(sketch):
    with arduino.StandinBoard(sketch["exe"]) as board:
        holder = serial.Serial(board.port, exclusive=True)
        try:
            with pytest.raises(DeviceError) as err:
                SerialBackend(board.port).open_port()
        finally:
            holder.close()
    text = str(err.value)
    assert f"{board.port} is busy" in text and "close it" in text


def test_connect_fails_on_a_missing_port_before_any_request(tmp_path):
    with pytest.raises(DeviceError, match="there is no /dev/ttyACM_tinymighty_nope"):
        with connect(SerialBackend("/dev/ttyACM_tinymighty_nope"), tmp_path / "log"):
            pass


# ---- live mode -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_live_mode_gives_streams_events(tmp_path):
    """Live mode's events (microphone audio stride by stride, the stand-in's PDM reading a file) equal STREAM's on
    the same audio in the host build of the pipeline: the same frontend, network and recognizer steps."""
    folder = arduino.export_sketch(KWS, tmp_path / "export", live=KWS_SETTINGS, labels=KWS_LABELS)
    assert arduino.has_live_mode(folder)
    link = arduino.link_check(folder, tmp_path / "link")
    assert "TM_LIVE in 0 1 against" in (Path(link["elf"]).parent / "glue_syntax.txt").read_text()
    exe = arduino.build_host(folder, tmp_path / "live", live=True)

    pcm = tone_recording()
    (tmp_path / "audio.raw").write_bytes(pcm.tobytes())
    env = {**os.environ, "TM_STANDIN_SERIAL": "stdio", "TM_STANDIN_PCM": str(tmp_path / "audio.raw")}
    out = subprocess.run([exe], env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL).stdout.decode()
    assert out.startswith("LIVE model=fixture-kws-bands rate=16000"), out[:200]
    live = [tuple(map(int, m)) for m in re.findall(r"^EVENT \w+ class=(\d+) score=(\d+) stride=(\d+)", out, re.M)]
    assert "OVERRUN" not in out

    host = build_firmware(KWS, tmp_path / "host", board="host", features=mf.DEFAULT_TABLES_DIR)
    with connect(HostBackend(host, preload=pcm.tobytes()), tmp_path / "log") as client:
        stream = run_stream(client, PSRAM_BASE, len(pcm), 16000, KWS_SETTINGS)
    expected = [(cls, score) for _, _, cls, score in stream["events"]]
    assert len(expected) >= 3 and [(c, s) for c, s, _ in live] == expected
    # STREAM counts columns, live mode strides: a column per stride once the first window is full.
    assert {stride - cols for (_, _, stride), (_, cols, _, _) in zip(live, stream["events"], strict=True)} == {1}


# ---- the workflow's steps, on the default run's TinyConv ------------------------------------------------------


@pytest.mark.slow
def test_workflow_steps_on_the_default_runs_tinyconv(tmp_path):
    """rule arduino_sketch and arduino_link on the default run's PTQ int8 TinyConv (tests/fixtures/pinned), then its
    sketch's host build measured over a pty: outputs equal TFLM's, byte for byte, and live mode is on."""
    codegen = pytest.importorskip("tinymighty.codegen")
    pytest.importorskip("tflite_micro")
    from tinymighty.provenance import read_results, write_json

    tflite = REPO / "tests" / "fixtures" / "pinned" / "tinyconv_ptq_int8.tflite"
    info = codegen.generate(tflite, tmp_path / "model", sparse_threshold=0.8)
    write_json(tmp_path / "codegen.json", info)
    write_json(tmp_path / "index.json", {"labels": KWS_LABELS})
    config = yaml_config()
    folder = arduino.sketch_step(
        tmp_path / "model" / "model.c",
        tmp_path / "codegen.json",
        tmp_path / "index.json",
        tmp_path / "arduino" / "kws",
        config["features"],
        config["recognizer"],
    )
    assert (
        arduino.has_live_mode(folder)
        and '{"_silence_", "_unknown_", "yes", "no"}' in (folder / "tm_sketch.h").read_text()
    )
    arduino.link_step(folder, tmp_path / "arduino" / "link.json")
    link = read_results(tmp_path / "arduino" / "link.json")
    assert link["flash_model"] >= info["weight_bytes"] and link["flash_image"] < budgets.SKETCH_FLASH_BYTES
    assert link["ram_bss"] >= info["arena_size"]
    print(f"nRF52840 link of TinyConv ptq_int8: {link['flash_image']} B flash ({link['flash_model']} B model), "
          f"{link['ram_reserved']} B RAM ({link['ram_static']} B static + {link['stack_size']} B stack)")  # fmt: skip

    x = np.random.default_rng(4).integers(-128, 128, size=(8, 49 * 40), dtype=np.int8)
    exe = arduino.build_host(folder, tmp_path / "host")
    with arduino.StandinBoard(exe) as board:
        r = measure(link["elf"], {"kind": "serial", "url": board.port}, x, 3, tmp_path / "log",
                    expected_model=info["model_hash"], sizes=link)  # fmt: skip
    np.testing.assert_array_equal(r["outputs"], codegen.tflm_outputs(tflite, x))


def yaml_config():
    import yaml

    return yaml.safe_load((REPO / "config.yaml").read_text())
