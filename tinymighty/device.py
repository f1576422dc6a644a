"""Host side of the firmware protocol (firmware/PROTOCOL.md): build, boot, talk, measure.

The same collector drives three backends:

* ``QemuBackend``: ``qemu-system-arm -M mps2-an386 -icount shift=0``, the Cortex-M4F stand-in
  for the nRF52840.  Virtual time advances 1 ns per guest instruction, so the SysTick ticks the
  firmware reports convert to *emulated instructions* (QEMU's instruction count, not Cortex-M4
  cycles).  Test inputs are preloaded into PSRAM with ``-device loader`` instead of being
  streamed through the UART.
* ``SerialBackend``: any pyserial port or URL (``/dev/ttyACM0`` for a real board); inputs then
  travel over the line protocol.
* ``HostBackend``: the native build (``make BOARD=host``) on stdin/stdout, for tests.

Every byte exchanged is logged raw to a transcript file, which is named in every error.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import termios
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import serial

PROTOCOL_VERSION = 1
FIRMWARE_DIR = Path(__file__).resolve().parent.parent / "firmware"
PSRAM_BASE = 0x21000000  # mps2 PSRAM (16 MB): outside the budgeted 256 KB of RAM
PSRAM_SIZE = 16 * 1024 * 1024
RAM_BASE, RAM_BUDGET = 0x20000000, 256 * 1024
FLASH_BUDGET = 1024 * 1024
FAULT_EXIT = 99  # BOARD_FAULT_EXIT in firmware/board/board.h
RETRYABLE_DEVICE_ERRORS = {"CHECKSUM", "TOOLONG"}  # the request was damaged in transit


class DeviceError(RuntimeError):
    """The device could not be reached or answered wrongly; ``log_path`` holds the raw transcript."""

    def __init__(self, message: str, log_path: Path | None = None):
        self.log_path = log_path
        super().__init__(f"{message} (raw transcript: {log_path})" if log_path else message)


class FirmwareBuildError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# Framing


def crc8(data: bytes) -> int:
    """CRC-8/SMBUS (poly 0x07, init 0), the checksum on every protocol line."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def frame(payload: str) -> bytes:
    """One request line: payload, '*', two hex digits of CRC-8, newline."""
    data = payload.encode("ascii")
    return data + b"*%02X\n" % crc8(data)


def unframe(raw: bytes) -> str | None:
    """The payload of a received line (without newline), or None if its checksum is wrong."""
    raw = raw.rstrip(b"\r")
    if len(raw) < 3 or raw[-3:-2] != b"*":
        return None
    try:
        if int(raw[-2:], 16) != crc8(raw[:-3]):
            return None
        return raw[:-3].decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None


class Transcript:
    """Raw log of every byte sent and received, written through as it happens so that even a
    killed run leaves a complete record.  Lines are ``<seconds> <dir> <repr of bytes>`` with
    dir ``>`` host to device, ``<`` device to host, ``#`` a note from the host."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", buffering=1)
        self._t0 = time.monotonic()

    def _write(self, direction: str, text: str) -> None:
        if not self._file.closed:
            self._file.write(f"{time.monotonic() - self._t0:10.4f} {direction} {text}\n")

    def sent(self, data: bytes) -> None:
        self._write(">", repr(data))

    def received(self, data: bytes) -> None:
        self._write("<", repr(data))

    def note(self, text: str) -> None:
        self._write("#", text)

    def close(self) -> None:
        self._file.close()


# ---------------------------------------------------------------------------------------------
# Protocol client


@dataclass
class Response:
    verb: str
    fields: dict[str, str]
    data: list[list[str]] = field(default_factory=list)  # tokens of the "D" lines

    def int(self, key: str) -> int:
        return int(self.fields[key])


class _Retry(Exception):
    """An attempt failed in a way another attempt can fix (damaged line, timeout)."""


class _ConnectionLost(Exception):
    """The port closed or failed; becomes a DeviceError unless the caller expected it."""


class DeviceClient:
    """Speaks the line protocol over a pyserial-like port (``write``, ``read``, ``in_waiting``).

    Damaged lines in either direction and timeouts are retried up to ``retries`` times; all
    commands are idempotent, so a retry simply repeats the request."""

    def __init__(self, port, transcript: Transcript, *, retries: int = 3, timeout: float = 10.0,
                 describe_failure=None):
        self.port = port
        self.transcript = transcript
        self.retries = retries
        self.timeout = timeout
        self._describe_failure = describe_failure or (lambda: "")
        self._buf = b""
        self.info: dict | None = None
        try:
            self._send_raw(b"\n")  # ends any partial line a real board may hold from before
        except _ConnectionLost as exc:
            raise self._fail(f"cannot write to the device: {exc}") from exc

    # -- low level ------------------------------------------------------------------------------

    def _fail(self, message: str) -> DeviceError:
        extra = self._describe_failure()
        message = f"{message}; {extra}" if extra else message
        self.transcript.note(f"FAILED: {message}")
        return DeviceError(message, self.transcript.path)

    def _send_raw(self, data: bytes) -> None:
        self.transcript.sent(data)
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError, termios.error) as exc:
            raise _ConnectionLost(f"write failed: {exc}") from exc

    def _readline(self, deadline: float) -> bytes | None:
        """Next raw line without its newline, or None at the deadline."""
        while b"\n" not in self._buf:
            if time.monotonic() >= deadline:
                return None
            try:
                chunk = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError, termios.error) as exc:
                if self._buf:
                    self.transcript.received(self._buf)
                    self._buf = b""
                raise _ConnectionLost(str(exc)) from exc
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        self.transcript.received(line + b"\n")
        return line

    def _drain(self, quiet: float = 0.2, limit: float = 2.0) -> None:
        """Discards (but logs) input until the line has been quiet for a moment."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if self._readline(time.monotonic() + quiet) is None:
                break
        if self._buf:
            self.transcript.received(self._buf)
            self._buf = b""

    # -- requests -------------------------------------------------------------------------------

    def request(self, command: str, timeout: float | None = None, *, may_disconnect: bool = False) -> Response | None:
        """Sends one request and returns its OK response, retrying damaged exchanges.
        With may_disconnect, a connection that closes before the reply returns None."""
        try:
            return self._request(command, timeout)
        except _ConnectionLost as exc:
            if may_disconnect:
                self.transcript.note(f"connection closed during {command!r}, as it may: {exc}")
                return None
            raise self._fail(f"connection to the device lost: {exc}") from exc

    def _request(self, command: str, timeout: float | None) -> Response:
        verb = command.split()[0]
        req = f"{zlib.crc32(command.encode('ascii')):08X}"
        timeout = timeout or self.timeout
        problem = ""
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                self.transcript.note(f"attempt {attempt - 1} of {verb} failed ({problem}); retrying")
                self._drain()
            self._send_raw(frame(command))
            try:
                return self._collect(verb, req, time.monotonic() + timeout)
            except _Retry as exc:
                problem = str(exc)
        raise self._fail(f"{verb} failed after {self.retries + 1} attempts, last problem: {problem}")

    def _collect(self, verb: str, req: str, deadline: float) -> Response:
        data: list[list[str]] = []
        damaged = 0
        while True:
            raw = self._readline(deadline)
            if raw is None:
                if damaged:
                    raise _Retry(f"{damaged} damaged line(s) and no intact reply")
                raise _Retry("no reply within the timeout")
            payload = unframe(raw)
            if payload is None:
                # Keep reading to the end of this reply, so the retry starts on a clean line;
                # a damaged final line still looks like one.
                damaged += 1
                if raw.startswith((b"OK ", b"ERR ")):
                    raise _Retry("damaged reply line (bad checksum)")
                continue
            tokens = payload.split()
            if not tokens:
                continue
            kind = tokens[0]
            if kind == "D":
                data.append(tokens[1:])
            elif kind == "ERR":
                code = tokens[1] if len(tokens) > 1 else "?"
                if code in RETRYABLE_DEVICE_ERRORS:
                    raise _Retry(f"device reported {payload!r}")
                raise self._fail(f"device rejected {verb}: {payload}")
            elif kind == "OK" and tokens[1:3] == [verb, f"req={req}"]:
                if damaged:
                    raise _Retry(f"{damaged} damaged data line(s)")
                fields = dict(t.split("=", 1) for t in tokens[3:] if "=" in t)
                return Response(verb, fields, data)
            else:  # the boot banner, or the end of a late reply to an earlier request
                self.transcript.note(f"ignored unexpected line {payload!r}")
                data, damaged = [], 0

    # -- commands -------------------------------------------------------------------------------

    def identify(self) -> dict:
        f = self.request("ID").fields
        info = {k: f[k] for k in ("fw", "board", "model", "tick")}
        for key in ("proto", "in", "out", "arena", "weights", "in_zp", "out_zp", "tick_hz", "line_max"):
            info[key] = int(f[key])
        for key in ("in_scale", "out_scale"):
            info[key] = struct.unpack("<f", struct.pack("<I", int(f[key], 16)))[0]
        if info["proto"] != PROTOCOL_VERSION:
            raise self._fail(f"device speaks protocol {info['proto']}, this host speaks {PROTOCOL_VERSION}: "
                             "rebuild the firmware from this checkout")
        self.info = info
        return info

    def _require_info(self) -> dict:
        return self.info or self.identify()

    def memory(self) -> dict:
        return {k: int(v) for k, v in self.request("MEM").fields.items()}

    def calibrate(self, n: int) -> dict:
        """Runs the firmware's loop of exactly 2n instructions and returns its tick count."""
        return {k: int(v) for k, v in self.request(f"CAL {n}", timeout=self.timeout + n / 1e7).fields.items()}

    def load_input(self, x) -> None:
        """Copies one input into the device's input buffer (LOAD lines that fit line_max)."""
        info = self._require_info()
        data = _as_input_bytes(x, info["in"])
        chunk = (info["line_max"] - 24) // 2
        for offset in range(0, len(data), chunk):
            self.request(f"LOAD {offset} {data[offset:offset + chunk].hex().upper()}")

    def run(self, addr: int | None = None) -> dict:
        """One inference on the loaded input (or the preloaded input at addr)."""
        r = self.request("RUN" if addr is None else f"RUN {addr:#x}")
        return {"class": r.int("class"), "ticks": r.int("ticks"),
                "output": np.frombuffer(bytes.fromhex(r.fields["out"]), dtype=np.int8).copy()}

    def infer(self, x) -> dict:
        self.load_input(x)
        return self.run()

    def bench(self, runs: int, addr: int | None = None, timeout: float | None = None) -> list[int]:
        """Tick counts of `runs` back-to-back inferences."""
        cmd = f"BENCH {runs}" + ("" if addr is None else f" {addr:#x}")
        r = self.request(cmd, timeout=timeout)
        ticks = [int(t[2]) for t in r.data if t[0] == "BENCH"]
        if len(ticks) != runs or r.int("n") != runs:
            raise self._fail(f"BENCH {runs} returned {len(ticks)} runs")
        return ticks

    def batch(self, addr: int, count: int, stride: int | None = None,
              timeout: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Predictions (count,) and int8 outputs (count, out) for preloaded inputs at addr."""
        info = self._require_info()
        cmd = f"BATCH {addr:#x} {count}" + ("" if stride is None else f" {stride}")
        r = self.request(cmd, timeout=timeout)
        rows = [t for t in r.data if t[0] == "OUT"]
        if [int(t[1]) for t in rows] != list(range(count)):
            raise self._fail(f"BATCH {count} returned rows {[t[1] for t in rows][:10]}...")
        preds = np.array([int(t[2]) for t in rows], dtype=np.int64)
        outputs = np.frombuffer(b"".join(bytes.fromhex(t[3]) for t in rows), dtype=np.int8)
        outputs = outputs.reshape(count, info["out"]).copy()
        if zlib.crc32(outputs.tobytes()) != int(r.fields["crc32"], 16):
            raise self._fail("BATCH outputs do not match the device's CRC-32 digest")
        return preds, outputs

    def exit(self, code: int = 0) -> None:
        """Stops the firmware.  QEMU may close a pty before the reply can be read."""
        self.request(f"EXIT {code}", may_disconnect=True)


def _as_input_bytes(x, size: int) -> bytes:
    arr = np.asarray(x)
    if arr.dtype != np.int8 or arr.size != size:
        raise ValueError(f"model input must be {size} int8 values, got {arr.size} of {arr.dtype}: "
                         "quantize with the model's in_scale/in_zp first")
    return arr.tobytes()


# ---------------------------------------------------------------------------------------------
# Backends


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuBackend:
    """QEMU mps2-an386 with the UART on a loopback TCP socket (or a pty).

    Always use as a context manager: QEMU is stopped on exit, and a watchdog kills it after
    ``timeout`` seconds of wall time whatever the host code is doing."""

    machine = "mps2-an386"
    preload_addr = PSRAM_BASE

    def __init__(self, elf, *, preload: bytes | None = None, timeout: float = 600.0, serial: str = "tcp",
                 qemu: str = "qemu-system-arm", icount_shift: int = 0, baudrate: int = 115200):
        if serial not in ("tcp", "pty"):
            raise ValueError(f"serial must be 'tcp' or 'pty', not {serial!r}")
        self.elf = Path(elf)
        if not self.elf.is_file():
            raise FileNotFoundError(f"firmware ELF {self.elf} does not exist: build it with build_firmware()")
        if preload is not None and len(preload) > PSRAM_SIZE:
            raise ValueError(f"{len(preload)} bytes of inputs do not fit the {PSRAM_SIZE}-byte PSRAM: measure fewer")
        self.preload = preload
        self.timeout = timeout
        self.serial = serial
        self.qemu = qemu
        self.icount_shift = icount_shift
        self.baudrate = baudrate
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.timed_out = False
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._watchdog: threading.Timer | None = None
        self._log = None
        self._tcp_port: int | None = None

    def instructions_per_tick(self, tick_hz: int) -> float:
        """Emulated instructions per tick of a tick_hz clock: with -icount shift=N each guest
        instruction advances virtual time by 2**N ns."""
        return 1e9 / tick_hz / (1 << self.icount_shift)

    def command(self) -> list[str]:
        chardev = {"tcp": f"tcp:127.0.0.1:{self._tcp_port},server=on,wait=on,nodelay=on",
                   "pty": "pty"}[self.serial]
        cmd = [self.qemu, "-M", self.machine, "-icount", f"shift={self.icount_shift}", "-nographic",
               "-monitor", "none", "-serial", chardev,
               "-semihosting-config", "enable=on,target=native", "-kernel", str(self.elf)]
        if self.preload is not None:
            cmd += ["-device", f"loader,file={self._tmp.name}/inputs.bin,addr={PSRAM_BASE:#x},force-raw=on"]
        return cmd

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self) -> None:
        if shutil.which(self.qemu) is None:
            raise FileNotFoundError(f"{self.qemu} not found: install qemu-system-arm (./tbm install)")
        self._tmp = tempfile.TemporaryDirectory(prefix="tm-qemu-")
        if self.preload is not None:
            Path(self._tmp.name, "inputs.bin").write_bytes(self.preload)
        self._watchdog = threading.Timer(self.timeout, self._on_timeout)
        self._watchdog.daemon = True
        self._watchdog.start()
        for attempt in range(3):
            try:
                self._launch()
                return
            except DeviceError:
                # The free port we picked can be taken by someone else before QEMU binds it.
                if "Address already in use" not in self.qemu_output() or attempt == 2:
                    raise

    def _launch(self) -> None:
        self._tcp_port = _free_port()
        if self._log:
            self._log.close()
        self._log = open(Path(self._tmp.name, "qemu.log"), "w+b")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        if self.serial == "tcp":
            self._wait_for_output(r"waiting for connection")
            self.url = f"socket://127.0.0.1:{self._tcp_port}"
        else:
            self.url = "/dev/pts/" + self._wait_for_output(r"char device redirected to /dev/pts/(\d+)").group(1)

    def _on_timeout(self) -> None:
        self.timed_out = True
        self._kill()

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def qemu_output(self) -> str:
        if not self._log or self._log.closed:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def _wait_for_output(self, pattern: str, limit: float = 10.0) -> re.Match:
        """Waits until QEMU prints pattern (it announces its listening socket or pty)."""
        end = time.monotonic() + limit
        while time.monotonic() < end and self.proc.poll() is None:
            m = re.search(pattern, self.qemu_output())
            if m:
                return m
            time.sleep(0.01)
        raise DeviceError(f"QEMU did not print {pattern!r} within {limit:g} s; {self.status()}")

    def open_port(self, connect_timeout: float = 10.0):
        """A pyserial port on the guest's UART (connecting also lets the guest start)."""
        end = time.monotonic() + connect_timeout
        while True:
            try:
                port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0.05)
                break
            except serial.SerialException:
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise DeviceError(f"cannot connect to QEMU's UART at {self.url}; {self.status()}") from None
                time.sleep(0.02)
        sock = getattr(port, "_socket", None)
        if sock is not None:
            # pyserial's socket:// leaves Nagle on, which costs ~40 ms per request/reply round trip.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return port

    def status(self) -> str:
        if self.proc is None:
            return "QEMU not started"
        # A lost connection is often noticed just before QEMU has finished exiting.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=0.5)
        rc = self.proc.poll()
        if self.timed_out:
            return f"QEMU killed after the {self.timeout:g} s timeout"
        if rc is None:
            return "QEMU still running"
        what = " (CPU fault in the firmware)" if rc == FAULT_EXIT else ""
        output = [line for line in self.qemu_output().splitlines() if "waiting for connection" not in line]
        tail = "\n".join(output).strip()[-500:]
        return f"QEMU exited with status {rc}{what}" + (f"; its output: {tail}" if tail else "")

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self._watchdog:
            self._watchdog.cancel()
        if self.proc and self.proc.poll() is None:
            # The guest normally exits through EXIT; give it a moment before killing.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1.0)
            self._kill()
        if self._log:
            self._log.close()
        if self._tmp:
            self._tmp.cleanup()


class SerialBackend:
    """Any pyserial port or URL, e.g. a real board on /dev/ttyACM0, or QEMU's pty.  The
    firmware must already be running on the other end; inputs travel over the protocol."""

    preload_addr = None

    def __init__(self, url: str, *, baudrate: int = 115200):
        self.url = url
        self.baudrate = baudrate
        self._port = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def open_port(self):
        try:
            self._port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0.05)
        except serial.SerialException as exc:
            raise DeviceError(f"cannot open serial port {self.url}: {exc}") from exc
        return self._port

    def instructions_per_tick(self, tick_hz: int) -> None:
        return None  # real silicon: ticks are whatever the board's counter counts

    def status(self) -> str:
        return f"serial port {self.url}"

    def close(self) -> None:
        if self._port is not None:
            self._port.close()


class _PipePort:
    """The subset of the pyserial API DeviceClient uses, over a child process's stdio."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self._fd = proc.stdout.fileno()

    @property
    def in_waiting(self) -> int:
        buf = fcntl.ioctl(self._fd, termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", buf)[0]

    def read(self, size: int = 1) -> bytes:
        ready, _, _ = select.select([self._fd], [], [], 0.05)
        if not ready:
            return b""
        data = os.read(self._fd, size)
        if not data:
            raise serial.SerialException("firmware process closed its output")
        return data

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)

    def flush(self) -> None:
        self.proc.stdin.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()


class HostBackend:
    """The native build (make BOARD=host): same app, protocol on stdin/stdout.  Preloaded inputs
    are mapped at the same device address as in QEMU.  Ticks are wall-clock ns."""

    preload_addr = PSRAM_BASE

    def __init__(self, exe, *, preload: bytes | None = None):
        self.exe = Path(exe)
        self.preload = preload
        self.proc = None
        self._tmp = None

    def __enter__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="tm-host-")
        cmd = [str(self.exe)]
        if self.preload is not None:
            path = Path(self._tmp.name, "inputs.bin")
            path.write_bytes(self.preload)
            cmd += ["--preload", f"{path}@{PSRAM_BASE:#x}"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return self

    def __exit__(self, *exc):
        self.close()

    def open_port(self):
        return _PipePort(self.proc)

    def instructions_per_tick(self, tick_hz: int) -> None:
        return None  # wall-clock ns of the host CPU

    def status(self) -> str:
        rc = self.proc.poll() if self.proc else None
        return "firmware process running" if rc is None else f"firmware process exited with status {rc}"

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._tmp:
            self._tmp.cleanup()


def make_backend(cfg: dict, elf, preload: bytes | None = None):
    """Backend from a config dict: {"kind": "qemu"|"serial"|"host", ...backend options}."""
    cfg = dict(cfg)
    kind = cfg.pop("kind", "qemu")
    if kind == "qemu":
        return QemuBackend(elf, preload=preload, **cfg)
    if kind == "host":
        return HostBackend(elf, preload=preload, **cfg)
    if kind == "serial":
        if "url" not in cfg:
            raise ValueError("a serial backend needs url, e.g. {'kind': 'serial', 'url': '/dev/ttyACM0'}")
        return SerialBackend(cfg.pop("url"), **cfg)
    raise ValueError(f"unknown backend kind {kind!r}: use 'qemu', 'serial' or 'host'")


@contextlib.contextmanager
def connect(backend, log_path, **client_kwargs):
    """Starts `backend` and yields a DeviceClient on it; the transcript goes to log_path."""
    transcript = Transcript(log_path)
    try:
        with backend:
            client = DeviceClient(backend.open_port(), transcript, describe_failure=backend.status,
                                  **client_kwargs)
            try:
                yield client
            finally:
                with contextlib.suppress(Exception):
                    client.port.close()
    finally:
        transcript.note(f"backend: {backend.status()}")
        transcript.close()


# ---------------------------------------------------------------------------------------------
# Build and sizes


def build_firmware(model_dir, build_dir, *, board: str = "mps2_an386", kernels_dir=None,
                   stack_size: int | None = None, extra_cflags: str = "") -> Path:
    """Runs firmware/Makefile and returns the ELF (or the native executable for board='host').

    kernels_dir: None for firmware/kernels, "" for none (hand-written test models).
    Raises FirmwareBuildError with the compiler/linker output, e.g. when the image exceeds the
    nRF52840 budget."""
    args = ["make", "-C", str(FIRMWARE_DIR), f"MODEL_DIR={Path(model_dir).resolve()}",
            f"BUILD_DIR={Path(build_dir).resolve()}", f"BOARD={board}"]
    if kernels_dir is not None:
        args.append(f"KERNELS_DIR={Path(kernels_dir).resolve() if kernels_dir else ''}")
    if stack_size is not None:
        args.append(f"STACK_SIZE={stack_size}")
    if extra_cflags:
        args.append(f"EXTRA_CFLAGS={extra_cflags}")
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FirmwareBuildError(f"firmware build for {model_dir} failed ({' '.join(args)}):\n"
                                 f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return Path(build_dir).resolve() / ("firmware_host" if board == "host" else "firmware.elf")


# "  2 .text  00001ae4  00000140  00000140  00001140  2**6": index, name, size, VMA, LMA, offset, align
_OBJDUMP_SECTION = re.compile(r"^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+[0-9a-f]+\s+\S+\s*$")


def elf_sizes(elf, objdump: str = "arm-none-eabi-objdump") -> dict:
    """Flash and static RAM of a firmware ELF, from its section headers.

    flash = every loaded section (code, const data, the .data image), split into the model's
    weights (the .model section) and the rest; static RAM = allocated RAM sections except the
    stack (.data + .bss, which holds the tensor arena)."""
    out = subprocess.run([objdump, "-h", str(elf)], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    sections = {}
    for head, flags in zip(lines, lines[1:]):
        m = _OBJDUMP_SECTION.match(head)
        if m and "ALLOC" in flags:
            sections[m.group(1)] = {"size": int(m.group(2), 16), "vma": int(m.group(3), 16), "load": "LOAD" in flags}
    ram = {n: s for n, s in sections.items() if RAM_BASE <= s["vma"] < RAM_BASE + RAM_BUDGET and n != ".stack"}
    flash = sum(s["size"] for s in sections.values() if s["load"])
    model = sections.get(".model", {"size": 0})["size"]
    stack = sections.get(".stack", {"size": 0})["size"]
    data = sum(s["size"] for s in ram.values() if s["load"])
    bss = sum(s["size"] for s in ram.values() if not s["load"])
    return {"flash_total": flash, "flash_model": model, "flash_code": flash - model,
            "ram_data": data, "ram_bss": bss, "ram_static": data + bss, "stack_size": stack,
            "flash_budget": FLASH_BUDGET, "ram_budget": RAM_BUDGET,
            "sections": {n: s["size"] for n, s in sections.items()}}


# ---------------------------------------------------------------------------------------------
# Measurement


CALIBRATION_LOOPS = 1_000_000  # 2M instructions: the 40-instruction tick quantum is 0.002 %
BATCH_CHUNK = 128  # inputs per BATCH request, so a damaged line costs a short retry


def _timing(ticks: list[int], tick_hz: int, insns_per_tick: float | None) -> dict:
    t = np.asarray(ticks, dtype=np.int64)
    timing = {"n": len(ticks), "tick_hz": tick_hz, "ticks": ticks, "ticks_median": float(np.median(t))}
    if insns_per_tick is not None:
        insns = t * insns_per_tick
        timing.update({
            "unit": "emulated instructions (QEMU -icount instruction count, not Cortex-M4 cycles)",
            "instructions_median": float(np.median(insns)), "instructions_min": float(insns.min()),
            "instructions_max": float(insns.max()), "instructions_spread": float(insns.max() - insns.min()),
            "instructions_resolution": insns_per_tick})
    else:  # a real board's timer: ticks are time
        timing.update({"unit": "ticks", "seconds_median": float(np.median(t)) / tick_hz})
    return timing


def _check_calibration(client: DeviceClient, insns_per_tick: float) -> dict:
    """Times the firmware's known loop to confirm ticks convert to instructions as assumed."""
    cal = client.calibrate(CALIBRATION_LOOPS)
    measured = cal["loop_insns"] / cal["ticks"]
    if abs(measured / insns_per_tick - 1) > 0.001:
        raise client._fail(f"tick calibration: {measured:.3f} instructions per tick, expected {insns_per_tick:.3f}; "
                           "is QEMU running with -icount shift=0?")
    return {"loop_instructions": cal["loop_insns"], "ticks": cal["ticks"], "instructions_per_tick": measured}


def measure(elf, backend_cfg: dict, inputs: np.ndarray, n_bench: int = 10, log_path="device.log",
            timeout: float = 60.0) -> dict:
    """Measures one firmware image: sizes, memory, time per inference and every input's output.

    inputs: int8 (N, in_size), already quantized with the model's input scale/zero point.
    Returns identify info, flash/RAM figures, timing (median over n_bench runs on inputs[0]),
    and per-input "predictions" (N,) and "outputs" (N, out_size) as numpy arrays."""
    inputs = np.asarray(inputs)
    if inputs.ndim != 2 or inputs.dtype != np.int8 or len(inputs) == 0:
        raise ValueError(f"inputs must be a non-empty int8 array (N, in_size), got {inputs.dtype} {inputs.shape}")
    if n_bench < 1:
        raise ValueError("n_bench must be at least 1 (10 or more for a meaningful median)")
    sizes = elf_sizes(elf) if backend_cfg.get("kind", "qemu") != "host" else {}
    backend = make_backend(backend_cfg, elf, preload=np.ascontiguousarray(inputs).tobytes())
    with connect(backend, log_path, timeout=timeout) as client:
        info = client.identify()
        if inputs.shape[1] != info["in"]:
            raise ValueError(f"inputs have {inputs.shape[1]} values each but model {info['model']} takes {info['in']}")
        insns_per_tick = backend.instructions_per_tick(info["tick_hz"])
        calibration = _check_calibration(client, insns_per_tick) if insns_per_tick else None

        preload = backend.preload_addr
        if preload is None:
            client.load_input(inputs[0])
        ticks = client.bench(n_bench, preload, timeout=timeout + n_bench)

        n, size = inputs.shape
        if preload is None:
            runs = [client.infer(x) for x in inputs]
            predictions = np.array([r["class"] for r in runs], dtype=np.int64)
            outputs = np.stack([r["output"] for r in runs])
        else:
            parts = [client.batch(preload + start * size, min(BATCH_CHUNK, n - start), timeout=timeout)
                     for start in range(0, n, BATCH_CHUNK)]
            predictions = np.concatenate([p for p, _ in parts])
            outputs = np.concatenate([o for _, o in parts])
        memory = client.memory()
        client.exit(0)
    if memory["stack_size"] and memory["stack_used"] >= memory["stack_size"]:
        raise DeviceError(f"the firmware used all of its {memory['stack_size']}-byte stack, so its results are "
                          "not trustworthy: rebuild with a larger STACK_SIZE", Path(log_path))

    ram = {"data": memory["data"], "bss": memory["bss"], "static": memory["data"] + memory["bss"],
           "arena": memory["arena"], "stack_size": memory["stack_size"],
           "stack_high_water": memory["stack_used"],
           "peak": memory["data"] + memory["bss"] + memory["stack_used"], "budget": RAM_BUDGET}
    flash = {}
    if sizes:
        flash = {"total": sizes["flash_total"], "model": sizes["flash_model"], "code": sizes["flash_code"],
                 "model_weight_bytes": info["weights"], "budget": FLASH_BUDGET}
    return {"identify": info, "flash": flash, "ram": ram, "elf": sizes,
            "timing": _timing(ticks, info["tick_hz"], insns_per_tick), "calibration": calibration,
            "predictions": predictions, "outputs": outputs, "log_path": str(log_path)}
