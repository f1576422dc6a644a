"""Host side of the firmware protocol (firmware/PROTOCOL.md): build, boot, talk, measure.

The same collector drives three backends:

* ``QemuBackend``: ``qemu-system-arm -M mps2-an386 -icount shift=0``, the Cortex-M4F stand-in
  for the nRF52840.  Virtual time advances 1 ns per guest instruction, so the SysTick ticks the
  firmware reports convert to *emulated instructions* (QEMU's instruction count, not Cortex-M4
  cycles).  Test inputs are preloaded into PSRAM with ``-device loader`` instead of being
  streamed through the UART.
* ``SerialBackend``: any pyserial port or URL (``/dev/ttyACM0`` for a real board, e.g. the Arduino sketch on a
  Nano 33 BLE Sense, whose ticks are cycles); inputs then travel over the line protocol.
* ``HostBackend``: the native build (``make BOARD=host``) on stdin/stdout, for tests.

Every byte exchanged is logged raw to a transcript file, which is named in every error.

Modules: ``protocol`` (framing, Transcript, DeviceClient), ``backends`` (QEMU, serial, native;
make_backend, connect), ``build`` (build_firmware, elf_sizes), ``measure`` (one image's figures),
``step`` (the workflow steps), ``arduino`` (the variant as an Arduino sketch for the Nano 33 BLE Sense:
export, nRF52840 link check, the host build of its glue and ``StandinBoard`` to run it); the whole keyword
spotter (protocol version 2): ``pipeline`` (PIPE, STREAM, CLIPS, the host's reference, flash and RAM by source
group), ``recognizer`` (the post-processing's reference and settings), ``pipeline_step`` (its workflow steps).
"""

from .backends import FAULT_EXIT, PSRAM_BASE, PSRAM_SIZE, HostBackend, QemuBackend, SerialBackend, connect, make_backend
from .build import FIRMWARE_DIR, RAM_BASE, FirmwareBuildError, build_firmware, elf_sizes
from .measure import BATCH_CHUNK, CALIBRATION_LOOPS, bench_inputs, measure, over_inputs
from .protocol import (
    PROTOCOL_VERSION,
    RETRYABLE_DEVICE_ERRORS,
    BoardReset,
    DeviceClient,
    DeviceError,
    Response,
    Transcript,
    crc8,
    frame,
    unframe,
)

__all__ = [
    "BATCH_CHUNK",
    "CALIBRATION_LOOPS",
    "FAULT_EXIT",
    "FIRMWARE_DIR",
    "PROTOCOL_VERSION",
    "PSRAM_BASE",
    "PSRAM_SIZE",
    "RAM_BASE",
    "RETRYABLE_DEVICE_ERRORS",
    "BoardReset",
    "DeviceClient",
    "DeviceError",
    "FirmwareBuildError",
    "HostBackend",
    "QemuBackend",
    "Response",
    "SerialBackend",
    "Transcript",
    "bench_inputs",
    "build_firmware",
    "connect",
    "crc8",
    "elf_sizes",
    "frame",
    "make_backend",
    "measure",
    "over_inputs",
    "unframe",
]
