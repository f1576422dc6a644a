"""The line protocol of firmware/PROTOCOL.md: framing, the raw transcript, and DeviceClient."""

from __future__ import annotations

import os
import re
import struct
import termios
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import serial

from ..errors import TinyMightyError

PROTOCOL_VERSION = 2
# Version 2 only added commands (the keyword-spotting pipeline: PIPE, STREAM, CLIPS), so a version-1 device
# still answers every version-1 command; the pipeline's host side asks for version 2 itself.
COMPATIBLE_VERSIONS = (1, 2)
RETRYABLE_DEVICE_ERRORS = {"CHECKSUM", "TOOLONG"}  # the request was damaged in transit
DEVICE_ERRORS = RETRYABLE_DEVICE_ERRORS | {"ARGS", "UNKNOWN", "RANGE", "MODEL"}  # the ERR codes of PROTOCOL.md
# A received "line" longer than this without a newline is noise (the longest reply line is a few hundred
# bytes): it is cut off and counted as a damaged line, so a flood without newlines cannot grow the buffer.
MAX_REPLY_LINE = 4096
ID_TEXT_FIELDS = ("fw", "board", "model", "tick")
ID_INT_FIELDS = ("proto", "in", "out", "arena", "weights", "in_zp", "out_zp", "tick_hz", "line_max")
ID_FLOAT_FIELDS = ("in_scale", "out_scale")


class DeviceError(TinyMightyError, RuntimeError):
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
    """The payload of a received line (without newline), or None if it is not a well-formed line: its
    checksum is wrong, the payload holds a byte no protocol line holds (anything but printable ASCII), or
    it holds another line's checksum suffix ('*' and two hex digits). The last two catch what CRC-8 alone
    can miss, e.g. two lines run together when a newline is lost."""
    raw = raw.rstrip(b"\r")
    if len(raw) < 3 or raw[-3:-2] != b"*" or not re.fullmatch(rb"[0-9A-Fa-f]{2}", raw[-2:]):
        return None
    payload = raw[:-3]
    if int(raw[-2:], 16) != crc8(payload) or not _PRINTABLE.fullmatch(payload) or _SUFFIX.search(payload):
        return None
    return payload.decode("ascii")


_PRINTABLE = re.compile(rb"[\x20-\x7E]*")
_SUFFIX = re.compile(rb"\*[0-9A-Fa-f]{2}")


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


class BoardReset(DeviceError):
    """The device booted again (it sent READY) after it had answered: whatever it held is gone, so nothing it
    said before may be mixed with what it says after."""


class _Retry(Exception):
    """An attempt failed in a way another attempt can fix (damaged line, timeout)."""


class _ConnectionLost(Exception):
    """The port closed or failed; becomes a DeviceError unless the caller expected it."""


class _Malformed(Exception):
    """A well-framed reply whose fields are missing or do not parse."""


class DeviceClient:
    """Speaks the line protocol over a pyserial-like port (``write``, ``read``, ``in_waiting``).

    Damaged lines in either direction and timeouts are retried up to ``retries`` times; all commands are
    idempotent, so a retry simply repeats the request. Failing fast: a device that sends no well-formed
    line within ``dead_after`` seconds of the first request is declared dead, and one that stays silent
    (not a byte) through two attempts of a request is not asked again. Timeouts scale with the work asked
    for: ``timeout`` is the wait for a reply without work, plus, per inference requested, ten times what one
    took (``seconds_per_inference``, learnt from every BENCH), or a second while that is unknown. Every
    error names the port (``name``) and the raw transcript."""

    def __init__(
        self,
        port,
        transcript: Transcript,
        *,
        retries: int = 3,
        timeout: float = 5.0,
        dead_after: float = 8.0,
        seconds_per_inference: float | None = None,
        name: str | None = None,
        describe_failure=None,
    ):
        self.port = port
        self.transcript = transcript
        self.retries = retries
        self.timeout = timeout
        self.dead_after = dead_after
        self.seconds_per_inference = seconds_per_inference
        self.name = name or str(getattr(port, "name", None) or getattr(port, "port", None) or "the device")
        self._describe_failure = describe_failure or (lambda: "")
        self._buf = b""
        self._first_request: float | None = None
        self._heard = False  # a well-formed line has arrived
        self._received = 0  # bytes received in all
        self.replies = 0  # final OK lines accepted
        self.info: dict | None = None
        try:
            self._send_raw(b"\n")  # ends any partial line a real board may hold from before
        except _ConnectionLost as exc:
            raise self._fail(f"cannot write to the device: {exc}") from exc

    # -- low level ------------------------------------------------------------------------------

    def _fail(self, message: str) -> DeviceError:
        extra = self._describe_failure()
        message = f"{message} (device: {self.name}" + (f"; {extra})" if extra else ")")
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
        """Next raw line without its newline (at most MAX_REPLY_LINE bytes), or None at the deadline."""
        while b"\n" not in self._buf:
            if len(self._buf) > MAX_REPLY_LINE:  # a flood without newlines: hand it over as one damaged line
                line, self._buf = self._buf[:MAX_REPLY_LINE], self._buf[MAX_REPLY_LINE:]
                self.transcript.received(line)
                return line
            if time.monotonic() >= deadline:
                return None
            try:
                chunk = self.port.read(max(1, min(self.port.in_waiting, MAX_REPLY_LINE)))
            except (serial.SerialException, OSError, termios.error) as exc:
                if self._buf:
                    self.transcript.received(self._buf)
                    self._buf = b""
                raise _ConnectionLost(str(exc)) from exc
            self._received += len(chunk)
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        self.transcript.received(line + b"\n")
        return line

    def _drain(self, quiet: float = 0.2, limit: float = 2.0) -> None:
        """Discards (but logs) input until the line has been quiet for a moment."""
        quiet = min(quiet, self.timeout / 2)
        end = min(time.monotonic() + limit, self._dead_deadline())
        while time.monotonic() < end:
            if self._readline(min(time.monotonic() + quiet, end)) is None:
                break
        if self._buf:
            self.transcript.received(self._buf)
            self._buf = b""

    def _dead_deadline(self) -> float:
        """Until a well-formed line arrives, the time by which one must have (else: infinity)."""
        if self._heard or self._first_request is None:
            return float("inf")
        return self._first_request + self.dead_after

    def _dead(self) -> DeviceError:
        got = f"{self._received} bytes, none of them a well-formed line" if self._received else "not a single byte"
        return self._fail(
            f"no valid reply within {self.dead_after:g} s of the first request ({got}): the device is not running "
            "this project's firmware, is hung, or the port or baud rate is wrong; check them, reset the board, "
            "and read the transcript"
        )

    # -- requests -------------------------------------------------------------------------------

    def work_timeout(self, inferences: int) -> float:
        """Seconds to wait for a reply that needs `inferences` inferences: the base timeout plus ten times
        the time they should take (as a BENCH measured it), or a second each while that is unknown."""
        per = 10 * self.seconds_per_inference if self.seconds_per_inference else 1.0
        return self.timeout + inferences * per

    def request(
        self, command: str, timeout: float | None = None, *, may_disconnect: bool = False, check=None
    ) -> Response | None:
        """Sends one request and returns its OK response, retrying damaged exchanges. `check(response)`
        may return a problem (e.g. a data line missing), which is retried like a damaged line. With
        may_disconnect, a connection that closes before the reply returns None."""
        try:
            return self._request(command, timeout, check)
        except _ConnectionLost as exc:
            if may_disconnect:
                self.transcript.note(f"connection closed during {command!r}, as it may: {exc}")
                return None
            raise self._fail(f"connection to the device lost during {command.split()[0]}: {exc}") from exc

    def _request(self, command: str, timeout: float | None, check) -> Response:
        verb = command.split()[0]
        req = f"{zlib.crc32(command.encode('ascii')):08X}"
        timeout = timeout or self.timeout
        if self._first_request is None:
            self._first_request = time.monotonic()
        problem, silent = "", 0
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                if time.monotonic() >= self._dead_deadline():
                    raise self._dead()
                if silent >= 2:
                    raise self._fail(
                        f"{verb}: not a byte came back in {silent} attempts of {timeout:g} s each: the device "
                        "stopped answering (hung, reset or unplugged); reset it and read the transcript"
                    )
                self.transcript.note(f"attempt {attempt - 1} of {verb} failed ({problem}); retrying")
                self._drain()
            self._send_raw(frame(command))
            received = self._received
            try:
                response = self._collect(verb, req, min(time.monotonic() + timeout, self._dead_deadline()))
                problem = check(response) if check else None
                if problem is None:
                    return response
                self.transcript.note(f"reply to {verb} is incomplete: {problem}")
            except _Retry as exc:
                problem = str(exc)
            silent = silent + 1 if self._received == received else 0
        if not self._heard:
            raise self._dead()
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
            self._heard = True
            tokens = payload.split()
            if not tokens:
                continue
            kind = tokens[0]
            if kind == "D":
                data.append(tokens[1:])
            elif kind == "ERR" and len(tokens) > 1 and tokens[1] in DEVICE_ERRORS:
                code = tokens[1]
                if code in RETRYABLE_DEVICE_ERRORS:
                    raise _Retry(f"device reported {payload!r}")
                raise self._fail(f"device rejected {verb}: {payload}")
            elif kind == "OK" and tokens[1:3] == [verb, f"req={req}"]:
                if damaged:
                    raise _Retry(f"{damaged} damaged data line(s)")
                fields = dict(t.split("=", 1) for t in tokens[3:] if "=" in t)
                self.replies += 1
                return Response(verb, fields, data)
            elif kind == "READY" and self.replies:
                # The boot banner after the device has answered: it reset (power, a loose cable, a watchdog).
                message = (
                    f"the device reset during {verb}: it sent {payload!r} again after {self.replies} replies, so "
                    "what it held (the loaded input, its timings) is lost and nothing from before the reset is "
                    "used; check its power and cable and measure again"
                )
                self.transcript.note(f"RESET: {message}")
                raise BoardReset(f"{message} (device: {self.name})", self.transcript.path)
            else:  # the boot banner, the end of a late reply to an earlier request, or noise
                self.transcript.note(f"ignored unexpected line {payload!r}")
                data, damaged = [], 0

    def _parse(self, verb: str, parse):
        """parse() of a reply, with missing or malformed fields as a DeviceError naming them."""
        try:
            return parse()
        except _Malformed as exc:
            raise self._fail(f"malformed {verb} reply: {exc}") from None
        except (KeyError, ValueError, IndexError, TypeError, struct.error) as exc:
            raise self._fail(
                f"malformed {verb} reply ({type(exc).__name__}: {exc}): is the device running this project's "
                f"firmware (protocol {PROTOCOL_VERSION})? Rebuild and flash it from this checkout"
            ) from exc

    # -- commands -------------------------------------------------------------------------------

    def identify(self) -> dict:
        f = self.request("ID").fields
        if "proto" in f and f["proto"] not in {str(v) for v in COMPATIBLE_VERSIONS}:
            raise self._fail(
                f"device speaks protocol version {f['proto']}, this host speaks version {PROTOCOL_VERSION} (and 1): "
                "rebuild the firmware (for a board: its Arduino sketch) from this checkout and flash it"
            )
        missing = [k for k in (*ID_TEXT_FIELDS, *ID_INT_FIELDS, *ID_FLOAT_FIELDS) if k not in f]
        if missing:
            raise self._fail(
                f"its ID reply lacks the field(s) {', '.join(missing)}: it is not running this project's firmware "
                f"(protocol {PROTOCOL_VERSION}, firmware/PROTOCOL.md); rebuild and flash it from this checkout"
            )

        def parse():
            info = {k: f[k] for k in ID_TEXT_FIELDS}
            for key in ID_INT_FIELDS:
                info[key] = int(f[key])
            for key in ID_FLOAT_FIELDS:
                info[key] = struct.unpack("<f", struct.pack("<I", int(f[key], 16)))[0]
            if min(info["in"], info["out"]) < 1 or info["line_max"] < 32 or info["tick_hz"] < 1:
                raise _Malformed(f"in={info['in']} out={info['out']} line_max={info['line_max']} are impossible")
            return info

        info = self._parse("ID", parse)
        self.info = info
        return info

    def _require_info(self) -> dict:
        return self.info or self.identify()

    def memory(self) -> dict:
        r = self.request("MEM")
        return self._parse("MEM", lambda: {k: int(v) for k, v in r.fields.items()})

    def calibrate(self, n: int) -> dict:
        """Runs the firmware's loop of exactly 2n instructions and returns its tick count."""
        r = self.request(f"CAL {n}", timeout=self.timeout + n / 1e7)
        return self._parse("CAL", lambda: {k: int(v) for k, v in r.fields.items()})

    def load_input(self, x) -> None:
        """Copies one input into the device's input buffer (LOAD lines that fit line_max)."""
        info = self._require_info()
        data = _as_input_bytes(x, info["in"])
        chunk = (info["line_max"] - 24) // 2
        for offset in range(0, len(data), chunk):
            self.request(f"LOAD {offset} {data[offset : offset + chunk].hex().upper()}")

    def run(self, addr: int | None = None) -> dict:
        """One inference on the loaded input (or the preloaded input at addr)."""
        out_size = self._require_info()["out"]

        def check(r):
            out = r.fields.get("out", "")
            return None if len(out) == 2 * out_size else f"out= has {len(out) // 2} bytes, not {out_size}"

        r = self.request("RUN" if addr is None else f"RUN {addr:#x}", timeout=self.work_timeout(1), check=check)
        return self._parse(
            "RUN",
            lambda: {
                "class": r.int("class"),
                "ticks": r.int("ticks"),
                "output": np.frombuffer(bytes.fromhex(r.fields["out"]), dtype=np.int8).copy(),
            },
        )

    def infer(self, x) -> dict:
        self.load_input(x)
        return self.run()

    def bench(self, runs: int, addr: int | None = None, timeout: float | None = None) -> list[int]:
        """Tick counts of `runs` back-to-back inferences; also learns the wall time of one inference."""
        cmd = f"BENCH {runs}" + ("" if addr is None else f" {addr:#x}")

        def check(r):
            rows = [t for t in r.data if t and t[0] == "BENCH"]
            index = [t[1] if len(t) == 3 else None for t in rows]
            if index != [str(i) for i in range(runs)] or r.fields.get("n") != str(runs):
                return f"BENCH {runs} returned {len(rows)} runs (n={r.fields.get('n')})"
            return None

        start = time.monotonic()
        r = self.request(cmd, timeout=timeout or self.work_timeout(runs), check=check)
        self.seconds_per_inference = max((time.monotonic() - start) / runs, 1e-4)
        return self._parse("BENCH", lambda: [int(t[2]) for t in r.data if t[0] == "BENCH"])

    def batch(
        self, addr: int, count: int, stride: int | None = None, timeout: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictions (count,) and int8 outputs (count, out) for preloaded inputs at addr."""
        info = self._require_info()
        cmd = f"BATCH {addr:#x} {count}" + ("" if stride is None else f" {stride}")

        def rows_of(r):
            return [t for t in r.data if t and t[0] == "OUT"]

        def check(r):
            rows = rows_of(r)
            if [t[1] if len(t) == 4 else None for t in rows] != [str(i) for i in range(count)]:
                return f"BATCH {count} returned rows {[t[1:2] for t in rows][:10]}..."
            try:
                outputs = b"".join(bytes.fromhex(t[3]) for t in rows)
                crc = int(r.fields["crc32"], 16)
            except (ValueError, KeyError) as exc:
                return f"malformed BATCH data ({exc})"
            if len(outputs) != count * info["out"]:
                return f"BATCH outputs are {len(outputs)} bytes, not {count} x {info['out']}"
            if zlib.crc32(outputs) != crc:
                return "BATCH outputs do not match the device's CRC-32 digest"
            return None

        r = self.request(cmd, timeout=timeout or self.work_timeout(count), check=check)

        def parse():
            rows = rows_of(r)
            preds = np.array([int(t[2]) for t in rows], dtype=np.int64)
            outputs = np.frombuffer(b"".join(bytes.fromhex(t[3]) for t in rows), dtype=np.int8)
            return preds, outputs.reshape(count, info["out"]).copy()

        return self._parse("BATCH", parse)

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
