#!/usr/bin/env python3
"""Worst-case main-stack depth of a firmware image, from GCC's -fstack-usage and the call graph.

    stack_bound.py --elf unsized.elf [--objdump arm-none-eabi-objdump] [--margin 32] [--report out.txt] OBJ.o...

Prints the stack size to link with (bytes, a multiple of 16) on stdout. Standard library only, so the
Makefile can run it with any python3.

* Frames. Every function compiled from our sources has its frame in the .su file GCC writes next to its
  object (-fstack-usage); an unbounded dynamic frame ("dynamic" without "bounded") is an error. Functions
  without a compiler-made frame (library code: newlib's mem*/str*, libgcc's helpers; and our naked
  functions, whose assembly pushes what it needs while the .su says 0) are read from their code: every
  stack-pointer decrement they contain added up (push, stmdb sp!, vpush, sub sp, str/strd with
  pre-decrement of sp), which over-counts if anything. For our functions the larger of the two counts.
* Calls. Direct calls and tail calls are the relocations of the objects' code (R_ARM_THM_CALL,
  R_ARM_THM_JUMP24/19) and, for library code, its bl/b.w targets. There is no recursion: a cycle is an
  error. An indirect call (blx/bx to a register other than lr) may reach any function whose address is
  taken (any other relocation that names a function: literal pools, tables, initialisers) in the same
  group of objects; --group lists the object directories whose code can pass function pointers to each
  other (the firmware's app and board never hand one to the model and kernels: tm_invoke takes data
  only). Without --group, all objects are one group.
* Exceptions. The vector table in .isr_vector gives the handlers. On the Cortex-M4 every exception pushes
  a frame on the main stack: 32 bytes, or 104 with the floating-point context, plus up to 4 bytes of
  8-byte alignment. The 104-byte frame is assumed as soon as the image contains any floating-point
  instruction (otherwise CONTROL.FPCA never becomes 1). Handlers at the reset priority (SysTick, the
  IRQs, SVCall, PendSV, DebugMonitor, and MemManage/BusFault/UsageFault) cannot preempt each other;
  HardFault (-1) can preempt them, and NMI (-2) can preempt HardFault. So the bound is
      thread (Reset_Handler's call tree) + for each of the three levels: frame + its deepest handler.
* Margin. The total is rounded up to 16 bytes after adding --margin bytes (default 32): the stated room
  for what no static analysis sees (none is known here).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

CALL_RELOCS = {"R_ARM_THM_CALL", "R_ARM_THM_JUMP24", "R_ARM_THM_JUMP19", "R_ARM_CALL", "R_ARM_JUMP24"}
NOT_LOADED = (".debug", ".ARM.exidx", ".ARM.extab", ".comment", ".note", ".group")
BASIC_FRAME, FP_FRAME, ALIGN_PAD = 32, 104, 4
# Vector index -> preemption level: 0 configurable (reset priority 0), 1 HardFault, 2 NMI.
LEVEL_NAMES = ("configurable-priority exceptions and IRQs", "HardFault", "NMI")


def level_of(vector: int) -> int:
    return 2 if vector == 2 else 1 if vector == 3 else 0


def run(cmd: list[str]) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


_SECTION = re.compile(r"^RELOCATION RECORDS FOR \[(.+)\]:")
_RELOC = re.compile(r"^([0-9a-f]+)\s+(R_ARM_\w+)\s+(\S+)")
_SYM = re.compile(r"^[0-9a-f]+\s+(.{7})\s+(\S+)\s+[0-9a-f]+\s+(\S+)$")
_FUNC_HEAD = re.compile(r"^([0-9a-f]+) <(.+)>:$")
_INSN = re.compile(r"^\s*[0-9a-f]+:\s+(\S+)\s*(.*)$")  # objdump -d --no-show-raw-insn
_INDIRECT = re.compile(r"^(blx|bx)(\.n|\.w)?$")


def function_of_section(section: str) -> str | None:
    return section[len(".text.") :] if section.startswith(".text.") else None


class Obj:
    """One object file: its functions' frames (.su), call relocations, taken addresses, indirect calls."""

    def __init__(self, path: Path, objdump: str, group: str = ""):
        self.path, self.group = path, group
        self.frames: dict[str, int] = {}
        su = path.with_suffix(".su")
        if not su.is_file():
            raise SystemExit(f"{su}: missing (compile with -fstack-usage)")
        for line in su.read_text().splitlines():
            where, size, kind = line.rsplit("\t", 2)
            name = where.rsplit(":", 1)[1]
            if "dynamic" in kind and "bounded" not in kind:
                raise SystemExit(f"{su}: {name} has an unbounded dynamic stack frame ({kind})")
            self.frames[name] = int(size)
        self.funcs, self.globals = set(), set()
        for line in run([objdump, "-t", str(path)]).splitlines():
            m = _SYM.match(line)
            if m and "F" in m.group(1):
                self.funcs.add(m.group(3))
                if m.group(1)[0] == "g":
                    self.globals.add(m.group(3))
        self.calls: dict[str, set[str]] = {f: set() for f in self.funcs}
        self.taken: set[str] = set()  # symbols named by a non-call relocation
        self.vectors: dict[str, set[int]] = {}  # symbol -> vector indices, for .isr_vector
        section = None
        for line in run([objdump, "-r", str(path)]).splitlines():
            m = _SECTION.match(line)
            if m:
                section = m.group(1)
                continue
            m = _RELOC.match(line)
            if not m or section is None:
                continue
            if section.startswith(NOT_LOADED):  # debug info and unwind tables name functions too
                continue
            offset, kind, sym = int(m.group(1), 16), m.group(2), m.group(3).split("+")[0]
            sym = function_of_section(sym) or sym
            caller = function_of_section(section)
            if section == ".isr_vector":  # the handlers: roots, not targets of indirect calls
                self.vectors.setdefault(sym, set()).add(offset // 4)
            elif kind in CALL_RELOCS and caller is not None:
                self.calls.setdefault(caller, set()).add(sym)
            else:
                self.taken.add(sym)
        self.indirect: set[str] = set()
        self.code_frames: dict[str, int] = {}  # frames as read from the code (naked functions)
        self.fp = False
        func = None
        for line in run([objdump, "-d", "--no-show-raw-insn", str(path)]).splitlines():
            m = _FUNC_HEAD.match(line)
            if m:
                func = m.group(2)
                continue
            m = _INSN.match(line)
            if m and func is not None:
                op, args = m.group(1), m.group(2)
                self.code_frames[func] = self.code_frames.get(func, 0) + sp_decrement(op, args)
                if _INDIRECT.match(op) and args and args.split()[0] != "lr":
                    self.indirect.add(func)
                if op.startswith("v"):
                    self.fp = True


def sp_decrement(op: str, args: str) -> int:
    """Bytes one instruction moves the stack pointer down (0 for anything else)."""
    regs = re.search(r"\{([^}]*)\}", args)
    count = 0
    if regs:
        for part in regs.group(1).split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(re.sub(r"\D", "", x)) for x in part.split("-"))
                count += hi - lo + 1
            elif part:
                count += 1
    if op in ("push", "push.w") or (op.startswith("stmdb") and args.startswith("sp!")):
        return 4 * count
    if op == "vpush" or (op.startswith("vstmdb") and args.startswith("sp!")):
        return (8 if regs and "d" in regs.group(1) else 4) * count
    if re.match(r"subs?(\.w)?$", op) and re.match(r"sp,\s*(sp,\s*)?#", args):
        return int(args.split("#")[1].split()[0], 0)
    m = re.search(r"\[sp,\s*#-(\d+)\]!", args)
    if op.startswith("str") and m:
        return int(m.group(1))
    return 0


def library_functions(elf: Path, objdump: str) -> tuple[dict, bool]:
    """name -> (frame bytes, callees, has indirect call) for every function of the linked image, read from
    its code; and whether the image has any floating-point instruction."""
    out: dict[str, tuple[int, set[str], bool]] = {}
    fp = False
    name, frame, calls, indirect = None, 0, set(), False

    def close():
        if name is not None:
            out[name] = (frame, calls, indirect)

    for line in run([objdump, "-d", "--no-show-raw-insn", str(elf)]).splitlines():
        m = _FUNC_HEAD.match(line)
        if m:
            close()
            name, frame, calls, indirect = m.group(2), 0, set(), False
            continue
        m = _INSN.match(line)
        if not m or name is None:
            continue
        op, args = m.group(1), m.group(2)
        if op.startswith("v"):
            fp = True
        frame += sp_decrement(op, args)
        target = re.match(r"[0-9a-f]+ <([^>+]+)>$", args)
        if op in ("bl", "b.w", "b") and target and target.group(1) != name:
            calls.add(target.group(1))
        if _INDIRECT.match(op) and args and args.split()[0] != "lr":
            indirect = True
    close()
    return out, fp


def analyse(objs: list[Obj], elf: Path, objdump: str, margin: int) -> dict:
    lib, fp_elf = library_functions(elf, objdump)
    defined_global = {g: o for o in objs for g in o.globals}
    frames, calls, taken = {}, {}, {}
    indirect: dict[str, str] = {}  # function -> its object's group

    def key(o: Obj | None, name: str) -> str:
        if o is not None and name in o.funcs:
            return name if name in o.globals else f"{name}@{o.path.stem}"
        if name in defined_global:
            return name
        return name  # library (or undefined, e.g. a linker symbol)

    for o in objs:
        for f in o.funcs:
            k = key(o, f)
            if f not in o.frames:
                raise SystemExit(f"{o.path}: {f} has no entry in its .su file")
            frames[k] = max(o.frames[f], o.code_frames.get(f, 0))
            calls[k] = {key(o, c) for c in o.calls.get(f, ())}
            if f in o.indirect:
                indirect[k] = o.group
        taken.setdefault(o.group, set()).update(key(o, s) for s in o.taken)
    ours = {k.split("@")[0] for k in frames}
    for name, (frame, callees, ind) in lib.items():
        if name not in ours:
            frames.setdefault(name, frame)
            calls.setdefault(name, set(callees))
            if ind:
                raise SystemExit(f"library function {name} makes an indirect call")
    linked = set(lib)
    targets = {g: sorted(t for t in ts if t in frames and t.split("@")[0] in linked) for g, ts in taken.items()}

    depth: dict[str, tuple[int, list[str]]] = {}
    visiting: set[str] = set()

    def deepest(f: str) -> tuple[int, list[str]]:
        if f in depth:
            return depth[f]
        if f in visiting:
            raise SystemExit(f"recursion through {f}: the stack cannot be bounded statically")
        if f not in frames:
            raise SystemExit(f"{f} is called but neither compiled with -fstack-usage nor in the image")
        visiting.add(f)
        best = (0, [])
        for c in sorted(calls.get(f, ()) | (set(targets.get(indirect[f], ())) if f in indirect else set())):
            if c in frames:
                d = deepest(c)
                best = max(best, d, key=lambda x: x[0])
            elif c.split("@")[0] in linked:
                raise SystemExit(f"{f} calls {c}, whose frame is unknown")
        visiting.discard(f)
        depth[f] = (frames[f] + best[0], [f] + best[1])
        return depth[f]

    vectors = {}
    for o in objs:
        for sym, idx in o.vectors.items():
            k = key(o, sym)
            if k in frames:
                vectors[k] = idx
    if "Reset_Handler" not in vectors:
        raise SystemExit("no Reset_Handler in any object's .isr_vector")
    fp = fp_elf or any(o.fp for o in objs)
    frame = (FP_FRAME if fp else BASIC_FRAME) + ALIGN_PAD
    thread = deepest("Reset_Handler")
    levels = []
    for level in range(3):
        handlers = [h for h, idx in vectors.items() if h != "Reset_Handler" and any(level_of(i) == level for i in idx)]
        if handlers:
            d = max((deepest(h) for h in handlers), key=lambda x: x[0])
            levels.append((LEVEL_NAMES[level], frame + d[0], d[1]))
    total = thread[0] + sum(level[1] for level in levels)
    size = -(-(total + margin) // 16) * 16
    return {
        "thread": thread,
        "exception_frame": frame,
        "fp_context": fp,
        "levels": levels,
        "bound": total,
        "margin": margin,
        "size": size,
        "indirect_targets": targets,
    }


def report(r: dict) -> str:
    lines = [
        f"stack size {r['size']} B = bound {r['bound']} B + margin {r['margin']} B, rounded up to 16",
        f"  thread mode: {r['thread'][0]} B  {' > '.join(r['thread'][1])}",
    ]
    for name, bytes_, path in r["levels"]:
        lines.append(
            f"  + {name}: {bytes_} B = {r['exception_frame']} B exception frame"
            f"{' (FP context)' if r['fp_context'] else ''} + {' > '.join(path)}"
        )
    for group, names in sorted(r["indirect_targets"].items()):
        lines.append(f"  indirect calls in {group or 'the image'} may reach: {', '.join(names) or 'nothing'}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--elf", type=Path, required=True, help="the image linked with any stack size")
    p.add_argument("--objdump", default="arm-none-eabi-objdump")
    p.add_argument("--margin", type=int, default=32)
    p.add_argument("--report", type=Path, help="also write the worst paths here")
    p.add_argument(
        "--group",
        action="append",
        default=[],
        help="comma-separated object directories that may share function pointers (repeatable)",
    )
    p.add_argument("objects", nargs="+", type=Path)
    args = p.parse_args(argv)
    group_of = {d: g for g in args.group for d in g.split(",")}
    objs = [Obj(o, args.objdump, group_of.get(o.parent.name, "")) for o in args.objects]
    r = analyse(objs, args.elf, args.objdump, args.margin)
    if args.report:
        args.report.write_text(report(r))
    print(r["size"])


if __name__ == "__main__":
    sys.exit(main())
