"""Protocol fuzzing: random and mutated lines against both ends of firmware/PROTOCOL.md, with fixed seeds and a
bounded number of cases, so every run tries the same cases in seconds.

* The firmware's request parser (firmware/app, the native build of the real app, compiled here with
  AddressSanitizer and UBSan when gcc has them): random bytes, random commands with valid checksums and
  hostile arguments, mutated valid requests, overlong lines. No crash, no sanitizer report, no hang, and
  exactly one well-formed final reply per request line, in order, with the right command word and req=.
* The host collector (DeviceClient) against a fake device on a loopback socket that answers like the firmware
  but damages its replies: bit flips, replaced bytes, cut lines, lost newlines, dropped and repeated lines,
  noise lines, binary noise, floods without newlines, silence, late replies, random lines only. The client
  must return exactly the true result or raise DeviceError, never anything else, within a bounded time; and
  it must recover when only one exchange was damaged. The damage is of the kinds the framing is built to
  catch: CRC-8 (poly 0x07) detects every error burst of up to 8 bits, lost newlines show as a second '*XX'
  inside the payload, dropped or repeated data lines fail the reply's own counts and CRC-32.
"""

from __future__ import annotations

import random
import select
import shutil
import socket
import subprocess
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import serial

from tinymighty.device import PSRAM_BASE, DeviceClient, DeviceError, Transcript, crc8, frame, unframe

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "tiny_model"
SEED = 15
CASES = 100  # of the 192 (damage, command, once or always) combinations, in a seeded order
LINE_MAX = 256  # PROTO_LINE_MAX in firmware/app/proto.h
IN_SIZE, PRELOADED = 16, 300  # the fixture model's input size; inputs preloaded at PSRAM_BASE


# ---------------------------------------------------------------- the firmware's parser


def _build_sanitized(out: Path) -> tuple[Path, bool]:
    """The native firmware (app + host board + fixture model), with ASan/UBSan if this gcc has them."""
    sources = [*sorted((REPO / "firmware" / "app").glob("*.c")), REPO / "firmware/board/host/board.c"]
    sources.append(FIXTURE / "model.c")
    base = ["gcc", "-std=c11", "-O1", "-g", "-I", str(REPO / "firmware/board"), "-I", str(REPO / "firmware/app")]
    base += ["-I", str(FIXTURE), *map(str, sources), "-o", str(out)]
    sanitize = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
    if subprocess.run(base[:1] + sanitize + base[1:], capture_output=True).returncode == 0:
        return out, True
    subprocess.run(base, check=True, capture_output=True)
    return out, False


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc (./tbm install)")
    return _build_sanitized(tmp_path_factory.mktemp("fuzz") / "firmware_host")


NUMBERS = ["0", "1", "3", "16", "255", "256", "-1", "0x", "0x0", "0x10", "0X21000000", f"{PSRAM_BASE:#x}",
           f"{PSRAM_BASE + 16:#x}", f"{PSRAM_BASE + PRELOADED * IN_SIZE - 16:#x}", "4294967295", "4294967296",
           "0xFFFFFFFF", "0x100000000", "99999999999999999999", "1e3", "+5", "0x-1", "12a", "0xg1", ""]  # fmt: skip
WORDS = ["ID", "MEM", "LOAD", "RUN", "BENCH", "BATCH", "CAL", "id", "RUNX", "OK", "ERR", "D", "EXIT1", "*", "LOAD*"]


def _hex(rng, n):
    return "".join(rng.choice("0123456789ABCDEFabcdefXg") if rng.random() < 0.05 else rng.choice("0123456789ABCDEF")
                   for _ in range(n))  # fmt: skip


def _random_command(rng) -> str:
    word = rng.choice(WORDS)
    args = []
    for _ in range(rng.choice([0, 0, 1, 2, 2, 3, 4, 9])):
        kind = rng.random()
        if kind < 0.6:
            args.append(rng.choice(NUMBERS))
        elif kind < 0.85:
            args.append(_hex(rng, rng.choice([0, 1, 2, 15, 16, 31, 32, 33, 40, 116, 117])))
        else:
            args.append("".join(chr(rng.randrange(33, 127)) for _ in range(rng.randrange(1, 12))))
    if word == "CAL" and args:  # a valid CAL with a huge count only burns seconds of loop
        args[0] = str(rng.randrange(0, 100000))
    sep = rng.choice([" ", " ", "  "])
    return (rng.choice(["", "", " "]) + sep.join([word, *args]) + rng.choice(["", "", " "]))[: LINE_MAX + 20]


VALID = ["ID", "MEM", "LOAD 0 " + "7F" * 16, "LOAD 8 0011", "RUN", f"RUN {PSRAM_BASE:#x}", f"BENCH 3 {PSRAM_BASE:#x}",
         f"BATCH {PSRAM_BASE:#x} 5", f"BATCH {PSRAM_BASE:#x} 3 32", "CAL 1000"]  # fmt: skip


def _mutate(rng, line: bytes) -> bytes:
    b = bytearray(line)
    for _ in range(rng.choice([1, 1, 2, 3])):
        op = rng.randrange(6)
        i = rng.randrange(len(b)) if b else 0
        if op == 0 and b:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[i] = rng.randrange(256)
        elif op == 2 and b:
            del b[i]
        elif op == 3:
            b.insert(i, rng.randrange(256))
        elif op == 4 and b:
            b[i:i] = b[i : i + rng.randrange(1, 20)]
        else:
            del b[i:]
    return bytes(b).replace(b"\n", b"")


def fuzz_requests(rng, n):
    """Request lines (without their newline) of every kind the parser may meet."""
    lines = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.2:
            lines.append(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80))).replace(b"\n", b""))
        elif kind < 0.55:
            lines.append(frame(_random_command(rng)).rstrip(b"\n"))
        elif kind < 0.75:
            lines.append(_mutate(rng, frame(rng.choice(VALID)).rstrip(b"\n")))
        elif kind < 0.85:  # mutated, then given a valid checksum: reaches the argument parsers
            payload = _mutate(rng, rng.choice(VALID).encode()).replace(b"\r", b"")
            lines.append(payload + b"*%02X" % crc8(payload))
        elif kind < 0.92:
            lines.append(frame(rng.choice(VALID)).rstrip(b"\n").replace(b"*", b"\r*", 1))  # a CR is ignored
        else:
            size = rng.choice([LINE_MAX - 2, LINE_MAX - 1, LINE_MAX, LINE_MAX + 1, 600])
            lines.append(frame("LOAD 0 " + "0" * (size - 10)).rstrip(b"\n"))
    return lines


def _firmware_view(line: bytes) -> bytes:
    return line.replace(b"\r", b"")  # the firmware drops every CR


def _framed_ok(line: bytes) -> bool:
    """The firmware's own check (proto_check): '*' and two hex digits (either case) matching the CRC-8."""
    if len(line) < 3 or line[-3:-2] != b"*" or any(c not in b"0123456789ABCDEFabcdef" for c in line[-2:]):
        return False
    return int(line[-2:], 16) == crc8(line[:-3])


def test_firmware_parser_survives_fuzzed_requests(firmware, tmp_path):
    exe, sanitized = firmware
    rng = random.Random(SEED)
    requests = fuzz_requests(rng, 1500)
    preload = tmp_path / "inputs.bin"
    preload.write_bytes(np.random.default_rng(SEED).integers(-128, 128, PRELOADED * IN_SIZE, dtype=np.int8))
    stream = b"".join(r + b"\n" for r in requests) + frame("ID") + frame("EXIT 0")
    proc = subprocess.run(
        [exe, "--preload", f"{preload}@{PSRAM_BASE:#x}"], input=stream, capture_output=True, timeout=120
    )
    assert proc.returncode == 0 and not proc.stderr, f"sanitized={sanitized}: {proc.stderr.decode()[-3000:]}"

    out = proc.stdout.split(b"\n")
    assert out[-1] == b"", "the last reply line has no newline"
    payloads = [unframe(line) for line in out[:-1]]
    assert None not in payloads, f"malformed reply line {out[payloads.index(None)]!r}"
    finals = [p for p in payloads[1:] if not p.startswith("D ")]  # after READY
    sent = [_firmware_view(r) for r in [*requests, frame("ID").rstrip(), frame("EXIT 0").rstrip()]]
    sent = [r for r in sent if r]  # blank lines get no reply
    assert len(finals) == len(sent), "not exactly one final reply per request line"
    for request, reply in zip(sent, finals, strict=True):
        if len(request) >= LINE_MAX:
            assert reply.startswith("ERR TOOLONG"), (request, reply)
        elif not _framed_ok(request):
            assert reply.startswith("ERR CHECKSUM"), (request, reply)
        elif reply.startswith("OK "):
            verb, req = reply.split()[1:3]
            assert request.split(b" ") and verb == request[:-3].split()[0].decode(), (request, reply)
            assert req == f"req={zlib.crc32(request[:-3]):08X}", (request, reply)
        else:
            assert reply.split()[1] in ("ARGS", "UNKNOWN", "RANGE"), (request, reply)
    assert finals[-1].startswith("OK EXIT") and finals[-2].startswith("OK ID")


# ---------------------------------------------------------------- the host collector


ID_FIELDS = (
    "proto=1 fw=0.1.0 board=fake model=fuzz in=16 out=4 arena=64 weights=80 in_scale=3D4CCCCD in_zp=-3 "
    "out_scale=3E000000 out_zp=5 tick=fake tick_hz=1000 line_max=256"
)


def _outputs(i: int) -> bytes:
    return bytes((7 * i + 13 * k) % 256 for k in range(4))


def true_reply(payload: str) -> list[str] | None:
    """The firmware's reply lines (payloads) to a request, for the commands the fuzz uses."""
    tokens = payload.split()
    verb, req = tokens[0], f"req={zlib.crc32(payload.encode()):08X}"
    if verb == "ID":
        return [f"OK ID {req} {ID_FIELDS}"]
    if verb == "MEM":
        return [f"OK MEM {req} data=8 bss=344 arena=64 stack_size=8192 stack_used=300"]
    if verb == "CAL":
        return [f"OK CAL {req} n={tokens[1]} loop_insns={2 * int(tokens[1])} ticks={int(tokens[1]) // 20}"]
    if verb == "RUN":
        i = (int(tokens[1], 0) - PSRAM_BASE) // IN_SIZE
        out = _outputs(i)
        return [
            f"OK RUN {req} class={int(np.argmax(np.frombuffer(out, np.int8)))} ticks={100 + i} out={out.hex().upper()}"
        ]
    if verb == "BENCH":
        runs = int(tokens[1])
        return [f"D BENCH {i} {500 + i % 3}" for i in range(runs)] + [f"OK BENCH {req} n={runs}"]
    if verb == "BATCH":
        start, count = (int(tokens[1], 0) - PSRAM_BASE) // IN_SIZE, int(tokens[2])
        rows, crc = [], 0
        for i in range(count):
            out = _outputs(start + i)
            crc = zlib.crc32(out, crc)
            rows.append(f"D OUT {i} {int(np.argmax(np.frombuffer(out, np.int8)))} {out.hex().upper()}")
        return [*rows, f"OK BATCH {req} n={count} crc32={crc:08X}"]
    return [f"ERR UNKNOWN {verb}"]


def _framed(payload: str) -> bytes:
    return frame(payload)


FAULTS = ["none", "crlf", "flip", "subst", "truncate", "join", "drop", "dup", "noise_line", "binary_noise",
          "foreign_ok", "err_checksum", "silence", "flood", "late", "random_only"]  # fmt: skip


def damage(rng, kind: str, lines: list[bytes]) -> tuple[list[bytes], float]:
    """The reply lines after `kind` of damage, and a delay before sending them."""
    lines = list(lines)
    pick = rng.randrange(len(lines))
    line = bytearray(lines[pick])
    body = len(line) - 1  # without the newline
    if kind == "crlf":
        lines = [x[:-1] + b"\r\n" for x in lines]
    elif kind == "flip":
        line[rng.randrange(body)] ^= 1 << rng.randrange(8)
        lines[pick] = bytes(line)
    elif kind == "subst":
        i = rng.randrange(body)
        line[i] = rng.choice([c for c in range(256) if c not in (line[i], 10)])
        lines[pick] = bytes(line)
    elif kind == "truncate":
        lines[pick] = bytes(line[: rng.randrange(body)]) + b"\n"
    elif kind == "join" and len(lines) > 1:
        pick = rng.randrange(len(lines) - 1)
        lines[pick : pick + 2] = [lines[pick][:-1] + lines[pick + 1]]
    elif kind == "drop":
        del lines[pick]
    elif kind == "dup":
        lines.insert(pick, lines[pick])
    elif kind == "noise_line":
        lines.insert(pick, bytes(rng.randrange(32, 127) for _ in range(rng.randrange(1, 60))) + b"\n")
    elif kind == "binary_noise":
        lines.insert(pick, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).replace(b"\n", b"") + b"\n")
    elif kind == "foreign_ok":  # a well-formed final line of some other request
        lines.insert(0, _framed("OK RUN req=0BADF00D class=1 ticks=5 out=00000000"))
    elif kind == "err_checksum":
        lines = [_framed("ERR CHECKSUM bad or missing *XX suffix")]
    elif kind == "silence":
        lines = []
    elif kind == "flood":
        lines = [bytes(rng.randrange(256) for _ in range(9000)).replace(b"\n", b"\x00")]
    elif kind == "late":
        return lines, 0.3
    elif kind == "random_only":
        lines = [_framed(" ".join(rng.choice(["OK", "D", "ERR", "ID", "x=1", "req=1"]) for _ in range(3)))
                 if rng.random() < 0.3 else bytes(rng.randrange(256) for _ in range(40)).replace(b"\n", b"") + b"\n"
                 for _ in range(rng.randrange(1, 6))]  # fmt: skip
    return lines, 0.0


class FakeDevice:
    """Answers like the firmware on a loopback socket; the replies to `target` requests are damaged on the
    first `damaged` attempts (all of them if None)."""

    def __init__(self, rng, fault: str, target: str, damaged: int | None):
        self.rng, self.fault, self.target, self.damaged = rng, fault, target, damaged
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.listener.getsockname()[1]}"
        self.attempts = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.listener.accept()
        buf = b""
        try:
            conn.sendall(_framed("READY proto=1 board=fake"))
            while data := conn.recv(4096):
                buf += data
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    if not raw.strip():
                        continue
                    payload = unframe(raw)
                    if payload is None:
                        conn.sendall(_framed("ERR CHECKSUM bad or missing *XX suffix"))
                        continue
                    lines = [_framed(p) for p in true_reply(payload)]
                    delay = 0.0
                    if payload.split()[0] == self.target:
                        self.attempts += 1
                        if self.damaged is None or self.attempts <= self.damaged:
                            lines, delay = damage(self.rng, self.fault, lines)
                    if delay:
                        time.sleep(delay)
                    conn.sendall(b"".join(lines))
        except OSError:
            pass
        finally:
            conn.close()
            self.listener.close()


COMMANDS = {
    "ID": lambda c: c.identify(),
    "MEM": lambda c: c.memory(),
    "CAL": lambda c: c.calibrate(1000),
    "RUN": lambda c: c.run(PSRAM_BASE + 3 * IN_SIZE),
    "BENCH": lambda c: c.bench(4, PSRAM_BASE),
    "BATCH": lambda c: c.batch(PSRAM_BASE + 16 * IN_SIZE, 6),
}


def truth(verb: str):
    """What the client must return for COMMANDS[verb] when nothing is damaged."""
    if verb == "BATCH":
        outs = [np.frombuffer(_outputs(16 + i), np.int8) for i in range(6)]
        return np.array([int(np.argmax(o)) for o in outs]), np.stack(outs)
    if verb == "BENCH":
        return [500 + i % 3 for i in range(4)]
    if verb == "RUN":
        out = np.frombuffer(_outputs(3), np.int8)
        return {"class": int(np.argmax(out)), "ticks": 103, "output": out}
    if verb == "MEM":
        return {"data": 8, "bss": 344, "arena": 64, "stack_size": 8192, "stack_used": 300}
    if verb == "CAL":
        return {"n": 1000, "loop_insns": 2000, "ticks": 50}
    return None  # ID: compared field by field below


def _same(verb, got, want) -> bool:
    if verb == "ID":
        return got["model"] == "fuzz" and got["in"] == 16 and got["out"] == 4 and got["in_zp"] == -3
    if verb == "BATCH":
        return np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    if verb == "RUN":
        return (
            got["class"] == want["class"]
            and got["ticks"] == want["ticks"]
            and np.array_equal(got["output"], want["output"])
        )
    return got == want


class SocketPort:
    """The part of the pyserial API DeviceClient uses, on a plain socket (pyserial's socket:// sleeps 0.3 s
    when it closes)."""

    def __init__(self, url: str):
        host, port = url.removeprefix("socket://").split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.port = url

    @property
    def in_waiting(self) -> int:
        return len(self.sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)) if self._ready(0) else 0

    def _ready(self, timeout) -> bool:
        return bool(select.select([self.sock], [], [], timeout)[0])

    def read(self, size: int = 1) -> bytes:
        if not self._ready(0.02):
            return b""
        data = self.sock.recv(size)
        if not data:
            raise serial.SerialException("socket disconnected")
        return data

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.sock.close()


@pytest.mark.slow
def test_collector_survives_damaged_replies(tmp_path):
    rng = random.Random(SEED)
    cases = [(fault, verb, damaged) for fault in FAULTS for verb in COMMANDS for damaged in (1, None)]
    rng.shuffle(cases)
    failures, outcomes = [], {"ok": 0, "DeviceError": 0}
    for n, (fault, verb, damaged) in enumerate(cases[:CASES]):
        device = FakeDevice(random.Random(f"{SEED}-{n}"), fault, verb, damaged)
        port = SocketPort(device.url)
        client = DeviceClient(
            port,
            Transcript(tmp_path / f"{n}.log"),
            retries=1,  # one retry: a single damaged exchange must be recovered from
            timeout=0.2,
            dead_after=1.0,
            seconds_per_inference=0.005,  # the fake device answers at once
        )
        start = time.monotonic()
        try:
            got = COMMANDS[verb](client)
            outcome = "ok" if _same(verb, got, truth(verb)) else f"WRONG RESULT {got!r}"
        except DeviceError:
            outcome = "DeviceError"
        except Exception as exc:  # noqa: BLE001 - the point: nothing but DeviceError may escape
            outcome = f"{type(exc).__name__}: {exc}"
        finally:
            port.close()
            client.transcript.close()
        elapsed = time.monotonic() - start
        must_succeed = fault in ("none", "crlf", "foreign_ok") or damaged == 1
        if outcome not in outcomes or (must_succeed and outcome != "ok") or elapsed > 5:
            failures.append(f"{fault}/{verb}/damaged={damaged}: {outcome} after {elapsed:.1f} s ({n}.log)")
        else:
            outcomes[outcome] += 1
    assert not failures, "\n".join(failures)
    assert outcomes["ok"] and outcomes["DeviceError"]
