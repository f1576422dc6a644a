"""Firmware + host protocol on real components: arm-none-eabi-gcc, QEMU mps2-an386, the native
build.  The model is the hand-written fixture in tests/fixtures/tiny_model (a 16->4 dense
layer) unless the code generator exists, in which case a real TinyConv is also run."""

from __future__ import annotations

import ast
import shutil
import socket
import subprocess
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from tinymighty import device
from tinymighty.device import (
    DeviceClient,
    DeviceError,
    FirmwareBuildError,
    QemuBackend,
    SerialBackend,
    Transcript,
    build_firmware,
    connect,
    crc8,
    frame,
    measure,
    unframe,
)

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_model"
TOOLS = ("arm-none-eabi-gcc", "qemu-system-arm", "make", "gcc")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS), reason=f"needs {', '.join(TOOLS)} (./tbm install)"
)


def _c_array(src: str, declaration: str) -> np.ndarray:
    """The initialiser of `declaration = {...};` in C source, as an int64 array."""
    body = src.split(declaration + " = ", 1)[1].split(";", 1)[0]
    return np.array(ast.literal_eval(body.replace("{", "[").replace("}", "]")), dtype=np.int64)


def fixture_reference(x: np.ndarray) -> np.ndarray:
    """numpy twin of tests/fixtures/tiny_model/model.c (weights read from its source)."""
    src = (FIXTURE / "model.c").read_text()
    w = _c_array(src, "weights[TM_OUTPUT_SIZE][TM_INPUT_SIZE]")
    b = _c_array(src, "bias[TM_OUTPUT_SIZE]")
    in_zp, out_zp = -3, 5  # TM_INPUT_ZERO_POINT, TM_OUTPUT_ZERO_POINT in model.h
    acc = b + (x.astype(np.int64) - in_zp) @ w.T
    return np.clip(((acc * 77 + 4096) >> 13) + out_zp, -128, 127).astype(np.int8)


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("fw")
    return {
        "elf": build_firmware(FIXTURE, root / "mps2", kernels_dir=""),
        "host": build_firmware(FIXTURE, root / "host", board="host", kernels_dir=""),
    }


@pytest.fixture(scope="module")
def inputs():
    return np.random.default_rng(1).integers(-128, 128, size=(300, 16), dtype=np.int8)


def test_framing():
    assert crc8(b"123456789") == 0xF4
    assert unframe(frame("RUN 0x21000000").rstrip(b"\n")) == "RUN 0x21000000"
    assert unframe(b"OK RUN*00") is None
    assert unframe(b"no checksum") is None


def test_measure_in_qemu_matches_host_build_and_reference(builds, inputs, tmp_path):
    r = measure(builds["elf"], {"kind": "qemu", "timeout": 60}, inputs, n_bench=10, log_path=tmp_path / "q.log")
    info = r["identify"]
    assert (info["proto"], info["board"], info["model"]) == (2, "mps2_an386", "fixture-dense16x4")
    assert (info["in"], info["out"], info["arena"], info["weights"]) == (16, 4, 64, 80)
    assert info["in_scale"] == pytest.approx(0.05) and info["out_zp"] == 5

    expected = fixture_reference(inputs)
    np.testing.assert_array_equal(r["outputs"], expected)
    np.testing.assert_array_equal(r["predictions"], expected.argmax(axis=1))

    # icount makes timing exact: every run takes the same number of emulated instructions.
    t = r["timing"]
    assert r["calibration"]["instructions_per_tick"] == 40.0
    assert t["n"] == 10 and t["instructions_run_spread"] == 0 and 200 < t["instructions_median"] < 5000

    # The fixture's 80 weight bytes are exactly the .model section.
    assert r["flash"]["model"] == 80 == info["weights"]
    assert r["flash"]["total"] == r["flash"]["model"] + r["flash"]["code"] < 16 * 1024
    ram = r["ram"]
    # The stack is sized from the call graph (firmware/tools/stack_bound.py) and the painted high-water mark
    # stays within it.
    assert ram["static"] == r["elf"]["ram_static"] and ram["arena"] == 64
    assert ram["stack_size"] == r["elf"]["stack_size"] < 1024
    assert 64 < ram["stack_high_water"] <= ram["stack_size"]

    # Nothing is preloaded into the host build: each timed input is sent (LOAD) before its BENCH.
    host = measure(builds["host"], {"kind": "host"}, inputs, n_bench=10, log_path=tmp_path / "h.log", timing_inputs=3)
    np.testing.assert_array_equal(host["outputs"], r["outputs"])
    assert "OK BATCH" in (tmp_path / "q.log").read_text()
    assert host["timing"]["inputs"] == 3 and [len(t) for t in host["timing"]["ticks"]] == [10] * 3
    assert (tmp_path / "h.log").read_text().count("OK BENCH") == 3


def test_single_inference_over_the_line(builds, inputs, tmp_path):
    x = inputs[:3]
    with connect(QemuBackend(builds["elf"], preload=x.tobytes(), timeout=30), tmp_path / "log") as client:
        loaded = client.infer(x[2])  # LOAD + RUN
        preloaded = client.run(device.PSRAM_BASE + 2 * 16)
        ticks = client.bench(3, device.PSRAM_BASE)
        client.exit(0)
    np.testing.assert_array_equal(loaded["output"], fixture_reference(x[2:3])[0])
    np.testing.assert_array_equal(preloaded["output"], loaded["output"])
    assert loaded["class"] == int(np.argmax(loaded["output"])) and len(set(ticks)) == 1


def test_device_answers_bad_requests_with_errors(builds, tmp_path):
    """Damaged and malformed requests get an ERR line (host build: same app, fast)."""
    proc = subprocess.run(
        [builds["host"]],
        capture_output=True,
        timeout=10,
        input=b"".join(
            [
                b"ID*00\n",  # bad checksum
                b"ID\n",  # missing checksum
                frame("FLY"),  # unknown command
                frame("LOAD 10 0011223344556677"),  # past the 16-byte input
                frame("BENCH x"),  # bad argument
                frame("RUN 0x21000000"),  # nothing preloaded there
                b"X" * 300 + b"\n",  # longer than line_max
                frame("ID"),  # still alive
            ]
        ),
    )
    replies = [unframe(line) for line in proc.stdout.splitlines()]
    assert None not in replies, proc.stdout
    codes = [r.split()[1] for r in replies[1:]]  # after READY
    assert codes == ["CHECKSUM", "CHECKSUM", "UNKNOWN", "RANGE", "ARGS", "RANGE", "TOOLONG", "ID"]

    with connect(device.HostBackend(builds["host"]), tmp_path / "log") as client:
        with pytest.raises(DeviceError, match="rejected FLY: ERR UNKNOWN"):
            client.request("FLY")


class CorruptingProxy:
    """TCP proxy between the client and QEMU's UART that flips a bit in chosen lines."""

    def __init__(self, upstream_url: str, damage_reply, damage_request=lambda i, line: False):
        host, port = upstream_url.removeprefix("socket://").split(":")
        self.upstream = (host, int(port))
        self.damage = {"reply": damage_reply, "request": damage_request}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        client, _ = self.listener.accept()
        qemu = socket.create_connection(self.upstream)
        for s in (client, qemu):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=self._pump, args=(client, qemu, "request"), daemon=True).start()
        self._pump(qemu, client, "reply")

    def _pump(self, src, dst, direction):
        buf, index = b"", 0
        try:
            while data := src.recv(4096):
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line and self.damage[direction](index, line):
                        line = bytearray(line)
                        line[len(line) // 2] ^= 0x01
                    index += bool(line)
                    dst.sendall(bytes(line) + b"\n")
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()


def _client_through(proxy_url, log_path, **kwargs):
    port = SerialBackend(proxy_url).open_port()
    return DeviceClient(port, Transcript(log_path), **kwargs)


def test_damaged_lines_are_retried(builds, tmp_path):
    # The first ID request is damaged (the device answers ERR CHECKSUM), then the reply to the
    # second one (reply line 2, after READY and that ERR): two retries, then success.
    with QemuBackend(builds["elf"], timeout=30) as qemu:
        proxy = CorruptingProxy(qemu.url, damage_reply=lambda i, line: i == 2, damage_request=lambda i, line: i == 0)
        client = _client_through(proxy.url, tmp_path / "log")
        assert client.identify()["model"] == "fixture-dense16x4"
        client.exit(0)
        client.transcript.close()
        assert qemu.wait() == 0
    log = (tmp_path / "log").read_text()
    assert "ERR CHECKSUM" in log and "damaged reply line" in log and log.count("retrying") == 2


def test_persistent_damage_fails_with_raw_transcript(builds, tmp_path):
    with QemuBackend(builds["elf"], timeout=30) as qemu:
        proxy = CorruptingProxy(qemu.url, damage_reply=lambda i, line: line.startswith(b"OK"))
        client = _client_through(proxy.url, tmp_path / "log", retries=2)
        with pytest.raises(DeviceError, match="ID failed after 3 attempts") as err:
            client.identify()
        client.transcript.close()
    assert err.value.log_path == tmp_path / "log"
    log = (tmp_path / "log").read_text()
    assert log.count("< b'OK ID") == 3 and "FAILED: ID failed after 3 attempts" in log


def test_late_reply_is_not_taken_for_the_next_one(builds, tmp_path):
    with connect(QemuBackend(builds["elf"], timeout=30), tmp_path / "log", retries=0) as client:
        with pytest.raises(DeviceError, match="CAL failed after 1 attempts"):
            # About 1 s of emulation against a 0.05 s wait: late however fast or loaded the machine is.
            client.request("CAL 300000000", timeout=0.05)
        assert client.calibrate(1)["n"] == 1  # its reply comes after the late one for CAL 300000000
        client.exit(0)
    assert "ignored unexpected line 'OK CAL req=" in (tmp_path / "log").read_text()


def test_serial_backend_over_qemu_pty(builds, inputs, tmp_path):
    x = inputs[:4]
    with QemuBackend(builds["elf"], serial="pty", timeout=30) as qemu:
        assert qemu.url.startswith("/dev/pts/")
        r = measure(builds["elf"], {"kind": "serial", "url": qemu.url}, x, n_bench=3, log_path=tmp_path / "log")
        assert qemu.wait() == 0  # measure ends with EXIT 0
    np.testing.assert_array_equal(r["outputs"], fixture_reference(x))
    assert r["timing"]["unit"] == "ticks" and r["ram"]["stack_high_water"] > 0


@pytest.mark.parametrize(
    "knob, message",
    [
        ("-DTM_FIXTURE_EXTRA_WEIGHTS=1100000", "FLASH BUDGET EXCEEDED"),
        ("-DTM_FIXTURE_ARENA_SIZE=300000", "RAM BUDGET EXCEEDED"),
    ],
)
def test_oversized_model_fails_at_link_time(tmp_path, knob, message):
    with pytest.raises(FirmwareBuildError) as err:
        build_firmware(FIXTURE, tmp_path, kernels_dir="", extra_cflags=knob)
    text = str(err.value)
    assert message in text and "overflowed by" in text
    assert "budget: FLASH 1048576, RAM 262144 bytes" in text and (".model" in text and ".bss" in text)


def test_qemu_is_killed_on_timeout(builds, tmp_path):
    # No wall-clock bound (it would depend on the machine's load): the backend's own timeout must be what
    # ended the run, before the device could answer.
    backend = QemuBackend(builds["elf"], timeout=1.5)
    with pytest.raises(DeviceError, match="QEMU killed after the 1.5 s timeout"):
        with connect(backend, tmp_path / "log") as client:
            client.calibrate(2_000_000_000)  # about 10 s of emulation
    assert backend.proc.poll() is not None
    log = (tmp_path / "log").read_text()
    assert "FAILED" in log and "OK CAL" not in log


def test_cpu_fault_is_reported(tmp_path):
    elf = build_firmware(FIXTURE, tmp_path / "fw", kernels_dir="", extra_cflags="-DTM_FIXTURE_FAULT")
    with pytest.raises(DeviceError, match="status 99 \\(CPU fault"):
        with connect(QemuBackend(elf, timeout=30), tmp_path / "log") as client:
            client.run()
    assert "!FAULT pc=" in (tmp_path / "log").read_text()


def test_batch_digest_matches_outputs(builds, inputs, tmp_path):
    with connect(device.HostBackend(builds["host"], preload=inputs.tobytes()), tmp_path / "log") as client:
        preds, outputs = client.batch(device.PSRAM_BASE, 5)
        reply = client.request(f"BATCH {device.PSRAM_BASE:#x} 5")
    assert int(reply.fields["crc32"], 16) == zlib.crc32(outputs.tobytes())
    np.testing.assert_array_equal(preds, outputs.argmax(axis=1))


def test_generated_tinyconv_end_to_end(tmp_path):
    """A real (untrained) TinyConv through the code generator, cross-compiled and run in QEMU:
    device outputs must equal TFLM's and the host build's, bit for bit."""
    codegen = pytest.importorskip("tinymighty.codegen")
    pytest.importorskip("tflite_micro")
    from tinymighty import tfutil
    from tinymighty.model import architectures as models
    from tinymighty.model import convert

    tfutil.make_deterministic(0)
    calib = np.random.default_rng(0).normal(size=(32, 49, 40)).astype(np.float32)
    tflite = tmp_path / "tinyconv.tflite"
    tflite.write_bytes(convert.to_int8(models.build("tinyconv", (49, 40), 4), calib, 32))
    info = codegen.generate(tflite, tmp_path / "model")
    elf = build_firmware(tmp_path / "model", tmp_path / "build")
    exe = build_firmware(tmp_path / "model", tmp_path / "host", board="host")

    x = np.random.default_rng(2).integers(-128, 128, size=(64, 49 * 40), dtype=np.int8)
    r = measure(elf, {"kind": "qemu", "timeout": 60}, x, n_bench=10, log_path=tmp_path / "q.log", timing_inputs=8)
    np.testing.assert_array_equal(r["outputs"], codegen.tflm_outputs(tflite, x))
    host = measure(exe, {"kind": "host"}, x, n_bench=1, log_path=tmp_path / "h.log")
    np.testing.assert_array_equal(host["outputs"], r["outputs"])

    ident = r["identify"]
    assert (ident["model"], ident["arena"], ident["weights"]) == (
        info["model_hash"],
        info["arena_size"],
        info["weight_bytes"],
    )
    # .model holds the weights plus the per-op parameter structs, nothing else.
    assert info["weight_bytes"] <= r["flash"]["model"] < info["weight_bytes"] + 1024
    # Timed on 8 of the inputs, each 10 times: runs of one input are equal under icount, inputs are not (the
    # count depends a little on the data), so the headline is their median, shown with the range.
    t = r["timing"]
    per_input = t["instructions_per_input"]
    assert t["inputs"] == len(per_input) == 8 and t["instructions_run_spread"] == 0
    assert t["instructions_median"] == np.median(per_input) > info["macs"] / 2
    assert t["instructions_min"] == min(per_input) < t["instructions_max"] == max(per_input)
    assert t["instructions_spread"] < 0.05 * t["instructions_median"]
    assert r["ram"]["arena"] < r["ram"]["static"] and 0 < r["ram"]["stack_high_water"] < r["ram"]["stack_size"]


@pytest.mark.slow
def test_device_step_deploys_w4a8_with_instructions_over_clips(tmp_path):
    """The workflow's device step on a W4A8 model (the default run's PTQ W4A8 TinyConv, INT4-packed weights):
    its weights stay packed (the model's flash about half the PTQ int8 one's), the device equals TFLM on every
    clip, and device.json has the instructions' median and range over the timed clips, with each clip's count."""
    pytest.importorskip("tflite_micro")
    import json

    from tinymighty.codegen import tflm_outputs
    from tinymighty.codegen.step import codegen_step
    from tinymighty.device.step import device_step, firmware_build_step
    from tinymighty.npio import quantize_input

    pinned = Path(__file__).parent / "fixtures" / "pinned"
    flash = {}
    for name in ("tinyconv_ptq_int8", "tinyconv_ptq_w4a8"):
        d = tmp_path / name
        codegen_step(pinned / f"{name}.tflite", d / "model" / "model.c", d / "codegen.json", 0.8)
        firmware_build_step(d / "model" / "model.c", d / "build" / "firmware.elf")
        flash[name] = device.elf_sizes(d / "build" / "firmware.elf")["flash_model"]
    assert flash["tinyconv_ptq_w4a8"] < 0.55 * flash["tinyconv_ptq_int8"]

    d, tflite = tmp_path / "tinyconv_ptq_w4a8", pinned / "tinyconv_ptq_w4a8.tflite"
    gen = json.loads((d / "codegen.json").read_text())
    x = np.random.default_rng(3).normal(size=(12, 49, 40)).astype(np.float32)
    np.savez(tmp_path / "testing.npz", x=x, y=np.arange(12) % 4)
    xq = quantize_input(x, {"dtype": np.int8, "quantization": (gen["input_scale"], gen["input_zero_point"])})
    np.save(tmp_path / "outputs.npy", tflm_outputs(tflite, xq.reshape(12, -1)))  # as the evaluate rule writes
    out = d / "device.json"
    device_step(
        d / "build" / "firmware.elf",
        tflite,
        tmp_path / "testing.npz",
        tmp_path / "outputs.npy",
        d / "codegen.json",
        out,
        d / "device.log",
        backend="qemu",
        port=None,
        baudrate=115200,
        accuracy_inputs=10,
        bench_runs=3,
        timing_inputs=6,
    )
    r = json.loads(out.read_text())
    assert r["matches_host"] and r["outputs_mismatched"] == 0 and r["inputs"] == 10
    assert r["flash"]["model"] == flash["tinyconv_ptq_w4a8"]
    ins = r["instructions"]
    assert (ins["inputs"], ins["runs"], ins["clips"]) == (6, 3, {"split": "testing.npz", "indices": list(range(6))})
    assert len(ins["per_input"]) == 6 and ins["median"] == round(np.median(ins["per_input"]))
    assert ins["min"] == min(ins["per_input"]) < ins["max"] == max(ins["per_input"]) < 1.01 * ins["min"]
    assert [len(t) for t in r["timing"]["ticks"]] == [3] * 6
