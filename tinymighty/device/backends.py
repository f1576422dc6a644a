"""Where the firmware runs: QEMU mps2-an386, a serial port (a real board), or the native build."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

import serial

from ..errors import InputError
from .protocol import DeviceClient, DeviceError, Transcript

PSRAM_BASE = 0x21000000  # mps2 PSRAM (16 MB): outside the budgeted 256 KB of RAM
PSRAM_SIZE = 16 * 1024 * 1024
FAULT_EXIT = 99  # BOARD_FAULT_EXIT in firmware/board/board.h


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs a command so that it dies with the process that started it, even when that process is SIGKILLed:
# prctl(PR_SET_PDEATHSIG, SIGKILL) survives the exec. If the parent died before the prctl, nothing starts.
# (The "parent" is the thread that called Popen: start QEMU from a thread that outlives it, e.g. the main one.)
_DIE_WITH_PARENT = """
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_PDEATHSIG) failed with errno %d" % ctypes.get_errno())
if os.getppid() != int(sys.argv[1]):
    sys.exit(0)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def dying_with_parent(cmd: list[str]) -> list[str]:
    """cmd, started through a launcher that makes it die with this process (Linux)."""
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *cmd]


def _memory_file(data: bytes) -> int:
    """An anonymous in-memory file holding data (a child reads it as /proc/self/fd/N): nothing on disk, so
    nothing is left behind whatever kills the run."""
    fd = os.memfd_create("tinymighty-inputs", 0)
    os.write(fd, data)
    return fd


class QemuBackend:
    """QEMU mps2-an386 with the UART on a loopback TCP socket (or a pty).

    Always use as a context manager: QEMU is stopped on exit, and a watchdog kills it after
    ``timeout`` seconds of wall time whatever the host code is doing. QEMU dies with this process even
    when it is SIGKILLed (see ``dying_with_parent``), and nothing of it is on disk: the preloaded inputs
    are an in-memory file and its output log an unnamed temporary file."""

    machine = "mps2-an386"
    preload_addr = PSRAM_BASE

    def __init__(
        self,
        elf,
        *,
        preload: bytes | None = None,
        timeout: float = 600.0,
        serial: str = "tcp",
        qemu: str = "qemu-system-arm",
        icount_shift: int = 0,
        baudrate: int = 115200,
    ):
        if serial not in ("tcp", "pty"):
            raise ValueError(f"serial must be 'tcp' or 'pty', not {serial!r}")
        self.elf = Path(elf)
        if not self.elf.is_file():
            raise InputError(f"firmware ELF {self.elf} does not exist: build it with build_firmware()")
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
        self._preload_fd: int | None = None
        self._watchdog: threading.Timer | None = None
        self._log = None
        self._tcp_port: int | None = None

    @property
    def name(self) -> str:
        """The port, as errors name it."""
        return f"QEMU {self.machine} running {self.elf} (UART {self.url or 'not connected'})"

    def instructions_per_tick(self, tick_hz: int) -> float:
        """Emulated instructions per tick of a tick_hz clock: with -icount shift=N each guest
        instruction advances virtual time by 2**N ns."""
        return 1e9 / tick_hz / (1 << self.icount_shift)

    def command(self) -> list[str]:
        chardev = {"tcp": f"tcp:127.0.0.1:{self._tcp_port},server=on,wait=on,nodelay=on", "pty": "pty"}[self.serial]
        cmd = [
            self.qemu,
            "-M",
            self.machine,
            "-icount",
            f"shift={self.icount_shift}",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            chardev,
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
            str(self.elf),
        ]
        if self.preload is not None:
            cmd += ["-device", f"loader,file=/proc/self/fd/{self._preload_fd},addr={PSRAM_BASE:#x},force-raw=on"]
        return cmd

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self) -> None:
        if shutil.which(self.qemu) is None:
            raise DeviceError(f"{self.qemu} not found: install qemu-system-arm (./tbm install)")
        if self.preload is not None:
            self._preload_fd = _memory_file(self.preload)
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
        self._log = tempfile.TemporaryFile(prefix="tm-qemu-")
        self.proc = subprocess.Popen(
            dying_with_parent(self.command()),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a Ctrl-C is for us, and _kill ends all of it
            pass_fds=() if self._preload_fd is None else (self._preload_fd,),
        )
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
        if self._preload_fd is not None:
            os.close(self._preload_fd)
            self._preload_fd = None


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

    @property
    def name(self) -> str:
        return f"serial port {self.url}"

    def open_port(self):
        # A device path is opened exclusively: a second program on the same port would steal replies.
        local = "://" not in self.url
        try:
            self._port = serial.serial_for_url(
                self.url, baudrate=self.baudrate, timeout=0.05, **({"exclusive": True} if local else {})
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"cannot open serial port {self.url}: {exc}; {_port_advice(self.url, exc)}") from exc
        return self._port

    def instructions_per_tick(self, tick_hz: int) -> None:
        return None  # real silicon: ticks are whatever the board's counter counts

    def status(self) -> str:
        return f"serial port {self.url}"

    def close(self) -> None:
        if self._port is not None:
            self._port.close()


def _port_advice(url: str, exc: Exception) -> str:
    """What to do about a port that would not open, by why it would not."""
    number = getattr(exc, "errno", None)
    text = str(exc)
    if number == errno.ENOENT or "No such file" in text:
        return (
            f"there is no {url}: plug the board in (a Nano 33 BLE Sense is usually /dev/ttyACM0; "
            "`arduino-cli board list` names its port) and set firmware.port to it"
        )
    if number in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text:
        return (
            f"{url} is busy: another program holds it (a serial monitor, `arduino-cli monitor`, another "
            "measurement, ModemManager); close it and run again"
        )
    if number == errno.EACCES or "Permission denied" in text:
        return (
            f"you may not open {url}: add yourself to its group (e.g. `sudo usermod -aG dialout $USER`, log in again)"
        )
    return "check firmware.port and that the board is plugged in and running this project's firmware"


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
        self._preload_fd: int | None = None

    @property
    def name(self) -> str:
        return f"native firmware {self.exe}"

    def __enter__(self):
        # The process reads EOF on stdin and exits when this one goes away; the preload is in memory only.
        cmd = [str(self.exe)]
        if self.preload is not None:
            self._preload_fd = _memory_file(self.preload)
            cmd += ["--preload", f"/proc/self/fd/{self._preload_fd}@{PSRAM_BASE:#x}"]
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=() if self._preload_fd is None else (self._preload_fd,),
            )
        except OSError as exc:
            self.close()
            raise DeviceError(f"cannot start the native firmware {self.exe}: {exc}; build it with BOARD=host") from exc
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
        if self._preload_fd is not None:
            os.close(self._preload_fd)
            self._preload_fd = None


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
            port = backend.open_port()
            client = DeviceClient(port, transcript, name=backend.name, describe_failure=backend.status, **client_kwargs)
            try:
                yield client
            finally:
                with contextlib.suppress(Exception):
                    client.port.close()
    finally:
        transcript.note(f"backend: {backend.status()}")
        transcript.close()
