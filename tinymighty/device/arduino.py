"""A deployed variant as an Arduino sketch for the Nano 33 BLE Sense (nRF52840): the export, the nRF52840 link
check, and the host build of the sketch's glue that the protocol tests run.

The sketch folder (``kws/``, flat, as the Arduino builder wants it) holds the generated model, the kernels, the
feature extractor and its tables, the pipeline and recognizer, the protocol app, and the board layer of
``firmware/board/nano33ble/``: copies of the very files the QEMU image is built from, plus ``tm_sketch.h``, the
build options that a Makefile would pass as -D (the Arduino builder takes none from a sketch). In protocol mode
it speaks firmware/PROTOCOL.md over USB Serial with ticks from the DWT cycle counter (``tick=cycles
tick_hz=64000000``), so ``firmware.backend: serial`` measures it with the same collector; in live mode
(``TM_LIVE 1``) the PDM microphone feeds the keyword spotter and events go to Serial.

Two builds check a sketch without a board (firmware/Makefile with ``SKETCH_DIR``): ``link_check`` cross-compiles
its C sources for the Cortex-M4F and links them with the nRF52840's memory map as the sketch gets it (budget
errors come from the linker) and compiles the C++ glue against a stand-in Arduino API for syntax and types;
``build_host`` builds the whole sketch natively against that stand-in, whose Serial is a pty, and
``StandinBoard`` runs it as a board.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..budgets import SKETCH_FLASH_BYTES, SKETCH_RAM_BYTES
from ..data import micro_frontend as mf
from ..errors import InputError
from ..provenance import read_results, write_json
from .backends import dying_with_parent
from .build import FIRMWARE_DIR, build_firmware, elf_sizes
from .pipeline import feature_tables
from .protocol import DeviceError
from .recognizer import Settings, settings

SKETCH = "kws"  # the folder and its .ino share the name, as the Arduino builder requires
CORE = "arduino:mbed_nano"
FQBN = "arduino:mbed_nano:nano33ble"
BOARD_NAME = "nano33ble_sense"  # board_name() on the board (the host build says nano33ble_standin)
PDM_GAIN = 20  # the PDM library's gain for the on-board microphone, as its examples set it
_BOARD = FIRMWARE_DIR / "board" / "nano33ble"
# The firmware's own files that a sketch holds, unchanged: (directory, file pattern).
SOURCES = (
    ("app", "*.[ch]"),
    ("board", "board.h"),
    ("kernels", "*.[ch]"),
    ("features", "*.[ch]"),
    ("pipeline", "*.[ch]"),
    ("board/nano33ble", "*.[ch]"),
    ("board/nano33ble", "*.cpp"),
    ("board/nano33ble", f"{SKETCH}.ino"),
)


def _sources(model_dir, tables_dir) -> list[Path]:
    dirs = [(FIRMWARE_DIR / d, pattern) for d, pattern in SOURCES]
    dirs += [(Path(model_dir), "model.[ch]"), (Path(tables_dir), "fe_*.[ch]")]
    files = [f for d, pattern in dirs for f in sorted(d.glob(pattern))]
    seen: dict[str, Path] = {}
    for f in files:
        if f.name in seen:  # one flat folder: a second file of the same name would replace the first
            raise InputError(f"{f} and {seen[f.name]} would both be {f.name} in the sketch: rename one")
        seen[f.name] = f
    if not (Path(model_dir) / "model.c").is_file():
        raise InputError(f"{model_dir} has no model.c: generate the variant's C first (tinymighty.codegen.generate)")
    return files


def sketch_options(live: Settings | None, labels) -> str:
    """tm_sketch.h: the options firmware/Makefile would pass (TM_PIPELINE) and live mode's settings."""
    lines = [
        "/* Build options of this sketch (the Arduino builder passes no -D options from a sketch, so board.h",
        " * includes this file).  Written by tinymighty.device.arduino; only TM_LIVE is meant to be edited. */",
        "#ifndef TM_SKETCH_H",
        "#define TM_SKETCH_H",
        "",
        "#define TM_PIPELINE 1 /* the feature extractor and the recognizer: protocol version 2, and live mode */",
        "",
    ]
    if live is None:
        lines += ["/* No live mode: this variant's network does not take the micro frontend's features. */"]
        lines += ["#define TM_LIVE 0", ""]
    else:
        names = ", ".join(f'"{label}"' for label in labels)
        lines += [
            "/* 0: protocol mode (firmware/PROTOCOL.md on Serial, for firmware.backend: serial).",
            " * 1: live mode (the PDM microphone -> keyword events on Serial). */",
            "#ifndef TM_LIVE",
            "#define TM_LIVE 0",
            "#endif",
            "",
            "/* Live mode's recognizer, from the workflow's recognizer: settings (STREAM's arguments). */",
            f"#define TM_LIVE_INTERVAL {live.interval}u /* feature strides per inference */",
            f"#define TM_LIVE_WINDOW {live.window}u /* inferences averaged */",
            f"#define TM_LIVE_THRESHOLD {live.threshold}u /* window sum a keyword must exceed */",
            f"#define TM_LIVE_SUPPRESSION {live.suppression}u /* inferences after an event with none */",
            f"#define TM_LIVE_KEYWORDS {live.keywords:#x}u /* bit c: class c is a keyword */",
            f"#define TM_LIVE_GAIN {PDM_GAIN}",
            f"#define TM_LIVE_LABELS {{{names}}}",
            "",
        ]
    return "\n".join([*lines, "#endif", ""])


def export_sketch(model_dir, out_dir, *, tables_dir=None, live: Settings | None = None, labels=()) -> Path:
    """Writes out_dir/kws/: the sketch of the model in model_dir (model.c, model.h), with the feature tables of
    tables_dir (default: the default features config's) and live mode's recognizer settings (None: no live mode,
    e.g. for a network on other features). Returns the sketch folder; an existing one is replaced."""
    files = _sources(model_dir, tables_dir or mf.DEFAULT_TABLES_DIR)
    if live is not None and len(labels) != live.classes:
        raise InputError(f"live mode's recognizer has {live.classes} classes but {len(labels)} labels: {labels}")
    sketch = Path(out_dir) / SKETCH
    tmp = Path(out_dir) / f".{SKETCH}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in files:
        shutil.copy2(f, tmp / f.name)
    (tmp / "tm_sketch.h").write_text(sketch_options(live, labels))
    (tmp / "README.md").write_text(_README.format(sketch=SKETCH, core=CORE, fqbn=FQBN))
    shutil.rmtree(sketch, ignore_errors=True)
    tmp.rename(sketch)
    return sketch


def has_live_mode(sketch_dir) -> bool:
    return "TM_LIVE_INTERVAL" in (Path(sketch_dir) / "tm_sketch.h").read_text()


def link_check(sketch_dir, build_dir, extra_cflags: str = "") -> dict:
    """The nRF52840 link check: the sketch's C sources cross-compiled and linked at the sketch's flash origin
    within its budgets (a FirmwareBuildError with the linker's words when they do not fit), the C++ glue
    compiled against the stand-in Arduino API in protocol and live mode. Returns the ELF's figures
    (tinymighty.device.build.elf_sizes) and its path."""
    elf = build_firmware(
        sketch_dir,
        build_dir,
        board="nano33ble",
        sketch_dir=sketch_dir,
        extra_cflags=extra_cflags,
        make_vars={"SKETCH_MODES": "0 1" if has_live_mode(sketch_dir) else "0"},
    )
    return {"elf": str(elf), **elf_sizes(elf, budgets=(SKETCH_FLASH_BYTES, SKETCH_RAM_BYTES))}


def build_host(sketch_dir, build_dir, live: bool = False) -> Path:
    """The whole sketch built on this machine against the stand-in Arduino core; returns the executable."""
    flags = {"EXTRA_CFLAGS": "-DTM_LIVE=1"} if live else {}
    return build_firmware(sketch_dir, build_dir, board="nano33ble_host", sketch_dir=sketch_dir, make_vars=flags)


class StandinBoard:
    """The host build of a sketch running as a board: its Serial is a pty whose path is ``port``.

    env: the stand-in's options (firmware/board/nano33ble/standin/standin.cpp), e.g. TM_STANDIN_RESET_AFTER.
    The process dies with this one and is killed on exit: like a board after EXIT, it never ends by itself."""

    def __init__(self, exe, env: dict | None = None, timeout: float = 10.0):
        self.exe = Path(exe)
        self.env = {**os.environ, **(env or {})}
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self.port: str | None = None

    def __enter__(self):
        self.proc = subprocess.Popen(dying_with_parent([str(self.exe)]), stdout=subprocess.PIPE, env=self.env)
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        line = self.proc.stdout.readline().decode(errors="replace") if ready else ""
        if not line.startswith("pty /dev/"):
            self.close()
            raise DeviceError(f"the stand-in board {self.exe} did not announce its pty within {self.timeout:g} s")
        self.port = line.split()[1]
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


_README = """# {sketch}: one keyword-spotting variant for the Arduino Nano 33 BLE Sense

Written by the Tiny but Mighty workflow (tinymighty.device.arduino); the repository's README, section
"A real board", has the whole procedure. In short, with `arduino-cli`:

    arduino-cli core install {core}
    arduino-cli compile --fqbn {fqbn} {sketch}
    arduino-cli upload --fqbn {fqbn} --port /dev/ttyACM0 {sketch}

Protocol mode (TM_LIVE 0 in tm_sketch.h) speaks the workflow's protocol (firmware/PROTOCOL.md) on USB Serial:
set `firmware.backend: serial` and `firmware.port: /dev/ttyACM0` and run the workflow. After a measurement the
sketch idles (EXIT): press the reset button once before the next one. Live mode (TM_LIVE 1) listens on the
microphone and prints a line per keyword: `EVENT <label> class=<c> score=<window sum> stride=<n> cycles=<c>`.

Every file here but tm_sketch.h and this README is a copy of a file of the repository: edit those, not these.
"""


# ---- the workflow's steps ----------------------------------------------------------------------------------


def sketch_step(model_c, codegen_json, index_json, out_sketch, features: dict, recognizer: dict) -> Path:
    """rule arduino_sketch: the variant's sketch at out_sketch (a folder named kws), with the features config's
    tables and, for micro features, live mode's recognizer settings from the config."""
    out_sketch = Path(out_sketch)
    if out_sketch.name != SKETCH:
        raise ValueError(f"a sketch folder must be named {SKETCH} (as its .ino), not {out_sketch.name}")
    labels = read_results(index_json)["labels"]
    gen = read_results(codegen_json)
    if features["kind"] != "micro":  # the network takes features the device does not compute: no live mode
        return export_sketch(Path(model_c).parent, out_sketch.parent)
    live = settings(recognizer, features, labels, gen["output_scale"], gen["output_zero_point"])
    with tempfile.TemporaryDirectory() as tmp:
        tables = feature_tables(features, tmp)
        return export_sketch(Path(model_c).parent, out_sketch.parent, tables_dir=tables, live=live, labels=labels)


def link_step(sketch_dir, out_json, config=None) -> None:
    """rule arduino_link: the nRF52840 link check of a sketch; its figures (and stack report) to out_json."""
    write_json(out_json, link_check(sketch_dir, Path(out_json).parent / "link"), config)
