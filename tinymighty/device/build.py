"""Building the firmware with firmware/Makefile, and the flash and static RAM of the image."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ..budgets import FLASH_BYTES, RAM_BYTES
from ..errors import TinyMightyError

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
RAM_BASE = 0x20000000
# What firmware/Makefile builds, by board: a cross board's ELF, or a native executable.
TARGETS = {"host": "firmware_host", "nano33ble_host": "firmware_standin"}


class FirmwareBuildError(TinyMightyError, RuntimeError):
    """The firmware did not compile or link; the message holds the compiler's or linker's output."""


def build_firmware(
    model_dir,
    build_dir,
    *,
    board: str = "mps2_an386",
    kernels_dir=None,
    stack_size: int | None = None,
    extra_cflags: str = "",
    features=None,
    sketch_dir=None,
    make_vars: dict | None = None,
) -> Path:
    """Runs firmware/Makefile and returns the ELF (or the native executable for board='host' and
    'nano33ble_host').

    kernels_dir: None for firmware/kernels, "" for none (hand-written test models).
    features: None for the network only; a directory holding fe_config.h and fe_tables.c (see
    tinymighty.device.pipeline.feature_tables) for the keyword spotter, feature extractor and pipeline included.
    sketch_dir: an exported Arduino sketch (tinymighty.device.arduino) instead of model_dir's model and the firmware's
    sources, for board='nano33ble' (the nRF52840 link check) or 'nano33ble_host'; make_vars: more make variables.
    Raises FirmwareBuildError with the compiler/linker output, e.g. when the image exceeds the
    nRF52840 budget."""
    args = [
        "make",
        "-C",
        str(FIRMWARE_DIR),
        f"MODEL_DIR={Path(model_dir).resolve()}",
        f"BUILD_DIR={Path(build_dir).resolve()}",
        f"BOARD={board}",
    ]
    if kernels_dir is not None:
        args.append(f"KERNELS_DIR={Path(kernels_dir).resolve() if kernels_dir else ''}")
    if stack_size is not None:
        args.append(f"STACK_SIZE={stack_size}")
    if extra_cflags:
        args.append(f"EXTRA_CFLAGS={extra_cflags}")
    if features is not None:
        args.append(f"FEATURES={Path(features).resolve()}")
    if sketch_dir is not None:
        args.append(f"SKETCH_DIR={Path(sketch_dir).resolve()}")
    args += [f"{k}={v}" for k, v in (make_vars or {}).items()]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FirmwareBuildError(
            f"firmware build for {model_dir} failed ({' '.join(args)}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return Path(build_dir).resolve() / TARGETS.get(board, "firmware.elf")


# "  2 .text  00001ae4  00000140  00000140  00001140  2**6": index, name, size, VMA, LMA, offset, align
_OBJDUMP_SECTION = re.compile(r"^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+\S+\s*$")


def elf_sizes(elf, objdump: str = "arm-none-eabi-objdump", budgets: tuple[int, int] = (FLASH_BYTES, RAM_BYTES)) -> dict:
    """Flash and RAM of a firmware ELF, from its section headers; budgets are the (flash, RAM) bytes its
    linker script allows.

    What a board pays, first: flash_image is the flashed binary (objcopy -O binary: from the image's first
    loaded byte, the start of flash or, for an Arduino sketch, where the bootloader leaves off, to the end of
    the last loaded section, gaps included) and ram_reserved the RAM the image
    reserves (from the start of RAM to the end of its last RAM section: the stack region, .bss with
    the tensor arena, and .data). Then the splits: flash_total is the loaded sections' sizes added
    up (equal to flash_image when the linker leaves no gaps), split into the model's constants (the
    .model section) and the rest; ram_static is .data + .bss (without the stack) and stack_size the
    stack region. stack_bound is the computed worst case of the main stack (firmware/tools/stack_bound.py,
    the build directory's stack.txt): the stack region is that plus stack_margin, rounded up to 16 bytes,
    unless the image was linked with a given STACK_SIZE."""
    out = subprocess.run([objdump, "-h", str(elf)], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    sections = {}
    for head, flags in zip(lines, lines[1:], strict=False):
        m = _OBJDUMP_SECTION.match(head)
        if m and "ALLOC" in flags:
            sections[m.group(1)] = {
                "size": int(m.group(2), 16),
                "vma": int(m.group(3), 16),
                "lma": int(m.group(4), 16),
                "load": "LOAD" in flags,
            }
    in_ram = {n: s for n, s in sections.items() if RAM_BASE <= s["vma"] < RAM_BASE + RAM_BYTES}
    ram = {n: s for n, s in in_ram.items() if n != ".stack"}
    loaded = [s for s in sections.values() if s["load"] and s["size"]]
    flash = sum(s["size"] for s in loaded)
    start = min((s["lma"] for s in loaded), default=0)
    image = max((s["lma"] + s["size"] for s in loaded), default=start) - start
    reserved = max((s["vma"] + s["size"] for s in in_ram.values() if s["size"]), default=RAM_BASE) - RAM_BASE
    model = sections.get(".model", {"size": 0})["size"]
    stack = sections.get(".stack", {"size": 0})["size"]
    data = sum(s["size"] for s in ram.values() if s["load"])
    bss = sum(s["size"] for s in ram.values() if not s["load"])
    return {
        "flash_image": image,
        "ram_reserved": reserved,
        "flash_total": flash,
        "flash_model": model,
        "flash_code": flash - model,
        "ram_data": data,
        "ram_bss": bss,
        "ram_static": data + bss,
        "stack_size": stack,
        **stack_report(Path(elf).parent / "stack.txt"),
        "flash_origin": start,
        "flash_budget": budgets[0],
        "ram_budget": budgets[1],
        "sections": {n: s["size"] for n, s in sections.items()},
    }


_STACK_LINE = re.compile(r"^stack size (\d+) B = bound (\d+) B \+ margin (\d+) B")


def stack_report(path) -> dict:
    """The stack sizing of firmware/tools/stack_bound.py (stack.txt): computed bound, margin and the
    worst call paths; empty figures when there is none."""
    path = Path(path)
    text = path.read_text() if path.is_file() else ""
    m = _STACK_LINE.match(text)
    if not m:
        return {"stack_bound": None, "stack_margin": None, "stack_report": None}
    return {"stack_bound": int(m.group(2)), "stack_margin": int(m.group(3)), "stack_report": text.rstrip("\n")}
