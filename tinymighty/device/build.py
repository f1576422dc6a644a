"""Building the firmware with firmware/Makefile, and the flash and static RAM of the image."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ..budgets import FLASH_BYTES, RAM_BYTES

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
RAM_BASE = 0x20000000


class FirmwareBuildError(RuntimeError):
    pass


def build_firmware(
    model_dir,
    build_dir,
    *,
    board: str = "mps2_an386",
    kernels_dir=None,
    stack_size: int | None = None,
    extra_cflags: str = "",
) -> Path:
    """Runs firmware/Makefile and returns the ELF (or the native executable for board='host').

    kernels_dir: None for firmware/kernels, "" for none (hand-written test models).
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
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FirmwareBuildError(
            f"firmware build for {model_dir} failed ({' '.join(args)}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
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
    for head, flags in zip(lines, lines[1:], strict=False):
        m = _OBJDUMP_SECTION.match(head)
        if m and "ALLOC" in flags:
            sections[m.group(1)] = {"size": int(m.group(2), 16), "vma": int(m.group(3), 16), "load": "LOAD" in flags}
    ram = {n: s for n, s in sections.items() if RAM_BASE <= s["vma"] < RAM_BASE + RAM_BYTES and n != ".stack"}
    flash = sum(s["size"] for s in sections.values() if s["load"])
    model = sections.get(".model", {"size": 0})["size"]
    stack = sections.get(".stack", {"size": 0})["size"]
    data = sum(s["size"] for s in ram.values() if s["load"])
    bss = sum(s["size"] for s in ram.values() if not s["load"])
    return {
        "flash_total": flash,
        "flash_model": model,
        "flash_code": flash - model,
        "ram_data": data,
        "ram_bss": bss,
        "ram_static": data + bss,
        "stack_size": stack,
        "flash_budget": FLASH_BYTES,
        "ram_budget": RAM_BYTES,
        "sections": {n: s["size"] for n, s in sections.items()},
    }
