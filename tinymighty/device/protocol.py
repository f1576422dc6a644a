"""The line protocol of firmware/PROTOCOL.md: framing, the raw transcript, and DeviceClient."""

from __future__ import annotations

import os
import struct
import termios
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import serial

PROTOCOL_VERSION = 1
RETRYABLE_DEVICE_ERRORS = {"CHECKSUM", "TOOLONG"}  # the request was damaged in transit


class DeviceError(RuntimeError):
    """The device could not be reached or answered wrongly; ``log_path`` holds the raw transcript."""

    def __init__(self, message: str, log_path: Path | None = None):
        self.log_path = log_path
        super().__init__(f"{message} (raw transcript: {log_path})" if log_path else message)


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

    def __init__(self, port, transcript: Transcript, *, retries: int = 3, timeout: float = 10.0, describe_failure=None):
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
            raise self._fail(
                f"device speaks protocol {info['proto']}, this host speaks {PROTOCOL_VERSION}: "
                "rebuild the firmware from this checkout"
            )
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
            self.request(f"LOAD {offset} {data[offset : offset + chunk].hex().upper()}")

    def run(self, addr: int | None = None) -> dict:
        """One inference on the loaded input (or the preloaded input at addr)."""
        r = self.request("RUN" if addr is None else f"RUN {addr:#x}")
        return {
            "class": r.int("class"),
            "ticks": r.int("ticks"),
            "output": np.frombuffer(bytes.fromhex(r.fields["out"]), dtype=np.int8).copy(),
        }

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

    def batch(
        self, addr: int, count: int, stride: int | None = None, timeout: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
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
        raise ValueError(
            f"model input must be {size} int8 values, got {arr.size} of {arr.dtype}: "
            "quantize with the model's in_scale/in_zp first"
        )
    return arr.tobytes()
