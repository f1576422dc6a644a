"""Which variant to deploy under flash, RAM, latency and accuracy budgets: for the report's first page and for
`./tbm recommend` (which reads results/summary.csv, so it answers for budgets the report was not built with).

Latency is estimated as emulated instructions / board clock: QEMU counts instructions, not cycles, so the
estimate is a lower bound for the real board. Light on purpose: imports nothing heavier than the csv module.
"""

import argparse
import csv
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import budgets as board

SUMMARY = Path("results") / "summary.csv"
# What each budget limits, in the order the report and the CLI name them.
LIMITS = ("flash", "ram", "ms", "min_accuracy")
LIMIT_NAMES = {"flash": "flash", "ram": "RAM", "ms": "latency", "min_accuracy": "minimum accuracy"}
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2}


class NoResultsError(RuntimeError):
    pass


class NothingFitsError(RuntimeError):
    pass


def parse_size(text) -> int:
    """Bytes from 4096, "24k", "256KiB", "1M", "1.5MB". k/K/KB/KiB are 1024 bytes and M/MB/MiB 1024^2, the
    convention of linker scripts and datasheets (the nRF52840's 256 KB RAM is 262,144 bytes)."""
    if isinstance(text, bool):
        raise ValueError(f"not a size: {text!r}")
    if isinstance(text, (int, float)):
        return int(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = m and m.group(2).lower()
    if not m or unit not in _UNITS:
        raise ValueError(f"not a size: {text!r} (use bytes, or a number with k, KiB, M or MiB, e.g. 24k, 1M)")
    return int(round(float(m.group(1)) * _UNITS[unit]))


def fmt_size(n) -> str:
    """1048576 -> "1 MB", 262144 -> "256 KB", 24576 -> "24 KB", 4000 -> "4,000 B"."""
    for unit, scale in (("MB", 1024**2), ("KB", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n:,} B"


@dataclass(frozen=True)
class Budgets:
    flash: int = board.FLASH_BYTES
    ram: int = board.RAM_BYTES
    ms: float | None = None  # None: no latency budget
    min_accuracy: float = 0.0
    clock_hz: int = board.CLOCK_HZ
    within_points: float = 1.0  # "the cheapest variant within this many points of the recommended one"

    def describe(self) -> dict:
        """Each budget as the reader sees it."""
        return {
            "flash": f"{fmt_size(self.flash)} flash",
            "ram": f"{fmt_size(self.ram)} RAM",
            "ms": "no latency budget" if self.ms is None else f"{self.ms:g} ms at {self.clock_hz / 1e6:g} MHz",
            "min_accuracy": f"accuracy at least {100 * self.min_accuracy:.1f}%",
        }

    def limits(self) -> dict:
        """Each budget as a limit: "flash ≤ 24 KB", "latency ≤ 10 ms", "accuracy ≥ 90.0%"."""
        return {
            "flash": f"flash \u2264 {fmt_size(self.flash)}",
            "ram": f"RAM \u2264 {fmt_size(self.ram)}",
            "ms": "no latency budget" if self.ms is None else f"latency \u2264 {self.ms:g} ms",
            "min_accuracy": f"accuracy \u2265 {100 * self.min_accuracy:.1f}%",
        }


def budgets_from_config(config) -> Budgets:
    """The `budgets:` section of the config; a null flash or RAM is the board's (tinymighty/budgets.py)."""
    b = (config or {}).get("budgets") or {}
    flash, ram = b.get("flash"), b.get("ram")
    return Budgets(
        flash=board.FLASH_BYTES if flash is None else parse_size(flash),
        ram=board.RAM_BYTES if ram is None else parse_size(ram),
        ms=b.get("latency_ms"),
        min_accuracy=float(b.get("min_accuracy") or 0.0),
        within_points=float(b.get("within_points", 1.0)),
    )


def _num(v):
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)):
        return v
    f = float(v)
    return int(f) if f.is_integer() else f


def candidate(row, clock_hz=board.CLOCK_HZ):
    """A deployed variant as {label, accuracy, flash, ram, instructions, ms}, or None when it was not measured
    on the device (not deployable, or the firmware stage did not run)."""
    if str(row.get("deployable", "True")).lower() in ("false", "0", "no"):
        return None
    vals = {k: _num(row.get(k)) for k in ("accuracy", "flash", "ram", "instructions")}
    if any(v is None for v in vals.values()):
        return None
    label = row.get("label") or f"{row['arch']}/{row['variant']}"
    return {**vals, "label": label, "family": row.get("family"), "ms": 1000.0 * vals["instructions"] / clock_hz}


# Among variants that tie on everything measured, the standard int8 pipelines come first.
_PREFERRED = {"ptq": 0, "qat": 1}


def _cost(c):
    """Cheaper: fewer instructions (time and energy per inference), then less flash, then less RAM."""
    return (c["instructions"], c["flash"], c["ram"], _PREFERRED.get(c.get("family"), 9), c["label"])


def _rank(c):
    """Better: more accurate; among equals, cheaper."""
    return (-c["accuracy"], *_cost(c))


def excluded_by(c, b: Budgets):
    """The budgets a candidate does not meet."""
    out = []
    if c["flash"] > b.flash:
        out.append("flash")
    if c["ram"] > b.ram:
        out.append("ram")
    if b.ms is not None and c["ms"] > b.ms:
        out.append("ms")
    if c["accuracy"] < b.min_accuracy:
        out.append("min_accuracy")
    return out


def recommend(rows, b: Budgets):
    """The most accurate deployed variant within the budgets, the cheapest within `within_points` of it, the
    runners-up, and which budgets bind (leave out a more accurate variant).

    Raises NoResultsError when no variant was measured on the device, NothingFitsError (whose message says
    which budget excludes most) when none fits."""
    cands = [c for c in (candidate(r, b.clock_hz) for r in rows) if c]
    if not cands:
        raise NoResultsError("no variant has device measurements (flash, RAM, instructions): nothing to choose from")
    fits = sorted((c for c in cands if not excluded_by(c, b)), key=_rank)
    counts = {k: sum(k in excluded_by(c, b) for c in cands) for k in LIMITS}
    if not fits:
        raise NothingFitsError(_nothing_fits(cands, counts, b))
    best = fits[0]
    near = [c for c in fits if 100 * (best["accuracy"] - c["accuracy"]) <= b.within_points + 1e-9]
    cheapest = min(near, key=_cost)
    # A budget binds when it leaves out a variant more accurate than the answer.
    better = [c for c in cands if c["accuracy"] > best["accuracy"]]
    binding = []
    for k in ("flash", "ram", "ms"):
        n = sum(k in excluded_by(c, b) for c in better)
        if n:
            binding.append({"budget": k, "name": LIMIT_NAMES[k], "excludes": n})
    return {
        "budgets": b,
        "best": best,
        "cheapest": cheapest,
        "fits": fits,
        "candidates": len(cands),
        "excluded": counts,
        "binding": binding,
        "next_better": min(better, key=_rank) if better else None,
    }


def _nothing_fits(cands, counts, b):
    lim = b.limits()
    worst = max(LIMITS, key=lambda k: counts[k])
    need = {
        "flash": f"the smallest needs {min(c['flash'] for c in cands):,} B flash",
        "ram": f"the smallest needs {min(c['ram'] for c in cands):,} B RAM",
        "ms": f"the fastest needs {min(c['ms'] for c in cands):.2f} ms",
        "min_accuracy": f"the most accurate reaches {100 * max(c['accuracy'] for c in cands):.2f}%",
    }
    parts = ", ".join(f"{lim[k]} excludes {counts[k]}" for k in LIMITS if counts[k])
    return f"Of {len(cands)} deployed variants, {parts}. The {LIMIT_NAMES[worst]} budget excludes most: {need[worst]}."


def binding_sentence(rec) -> str:
    """Which budget binds, as sentences for the report and the CLI."""
    if not rec["binding"]:
        return (
            "No budget binds: the most accurate deployed variant fits all of them, so the answer is limited by the "
            "study's variants, not by the board."
        )
    parts = [
        f"the {x['name']} budget (it leaves out {x['excludes']} more accurate variant"
        + ("s)" if x["excludes"] != 1 else ")")
        for x in rec["binding"]
    ]
    nb = rec["next_better"]
    over = [LIMIT_NAMES[k] for k in excluded_by(nb, rec["budgets"])]
    return (
        "Binding: " + " and ".join(parts) + f". The most accurate variant left out, {nb['label']} "
        f"({100 * nb['accuracy']:.2f}%), exceeds the {' and '.join(over)} budget{'s' if len(over) > 1 else ''}."
    )


def read_summary(path):
    path = Path(path)
    if not path.exists():
        raise NoResultsError(f"{path} does not exist: there are no results yet. Run ./tbm report first.")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def table(cands, marks=None, top=None) -> str:
    """A plain-text table of candidates (best first)."""
    marks = marks or {}
    head = ("", "variant", "accuracy", "flash B", "RAM B", "instructions", "est. ms", "")
    rows = [
        (
            str(i),
            c["label"],
            f"{100 * c['accuracy']:.2f}%",
            f"{c['flash']:,}",
            f"{c['ram']:,}",
            f"{c['instructions']:,}",
            f"{c['ms']:.2f}",
            marks.get(c["label"], ""),
        )
        for i, c in enumerate(cands[:top] if top else cands, 1)
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    left = {1, 7}

    def line(r):
        cells = (v.ljust(w) if i in left else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True)))
        return "  ".join(cells).rstrip()

    return "\n".join([line(head), *map(line, rows)])


def points(x) -> str:
    return f"{x:g} point" + ("" if x == 1 else "s")


def format_answer(rec, top=10) -> str:
    b, best, cheap = rec["budgets"], rec["best"], rec["cheapest"]
    desc = b.describe()
    n = len(rec["fits"])
    out = [
        "Budgets: " + ", ".join(desc[k] for k in LIMITS) + ".",
        f"Deploy {best['label']}: the most accurate of {n} variant{'s' if n != 1 else ''} that fit "
        f"({rec['candidates']} deployed).",
    ]
    if cheap["label"] != best["label"]:
        out.append(
            f"Cheapest within {points(b.within_points)} of it: {cheap['label']} "
            f"({100 * (cheap['accuracy'] - best['accuracy']):+.2f} points, "
            f"{cheap['instructions']:,} instructions vs {best['instructions']:,})."
        )
    else:
        out.append(f"No cheaper variant is within {points(b.within_points)} of it.")
    out.append(binding_sentence(rec))
    marks = {best["label"]: "<- recommended"}
    if cheap["label"] != best["label"]:
        marks[cheap["label"]] = f"<- cheapest within {points(b.within_points)}"
    shown = rec["fits"][:top]
    if cheap not in shown:
        shown = [*shown, cheap]
    out += ["", table(shown, marks)]
    if len(rec["fits"]) > len(shown):
        out.append(f"({len(rec['fits']) - len(shown)} more fit; --top N shows more)")
    out.append(
        f"est. ms = emulated instructions / {b.clock_hz / 1e6:g} MHz: instructions are not cycles, so the real "
        "board is slower."
    )
    return "\n".join(out)


def _size_arg(text):
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv=None) -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `./tbm recommend | head` ends quietly
    p = argparse.ArgumentParser(
        prog="./tbm recommend",
        description="Which variant to deploy under flash, RAM, latency and accuracy budgets, from the measured "
        "results of the last `./tbm report` (results/summary.csv).",
    )
    p.add_argument("--flash", type=_size_arg, default=board.FLASH_BYTES, help="flash budget: 4096, 24k, 1M, 256KiB")
    p.add_argument("--ram", type=_size_arg, default=board.RAM_BYTES, help="RAM budget, same units")
    p.add_argument("--ms", type=float, default=None, help="latency budget in ms at the board clock (default: none)")
    p.add_argument("--min-accuracy", type=float, default=0.0, help="minimum test accuracy, 0-1 (e.g. 0.9)")
    p.add_argument("--clock-mhz", type=float, default=board.CLOCK_HZ / 1e6, help="board clock for the ms estimate")
    p.add_argument("--within", type=float, default=1.0, help="points of accuracy for 'cheapest within' (default 1)")
    p.add_argument("--summary", help="summary.csv of a report run (default: this checkout's results/summary.csv)")
    p.add_argument("--top", type=int, default=10, help="rows of the table (default 10)")
    a = p.parse_args(argv)
    if a.min_accuracy > 1:
        p.error(f"--min-accuracy is a fraction between 0 and 1 (got {a.min_accuracy}); e.g. 0.9 for 90%")
    b = Budgets(
        flash=a.flash,
        ram=a.ram,
        ms=a.ms,
        min_accuracy=a.min_accuracy,
        clock_hz=int(a.clock_mhz * 1e6),
        within_points=a.within,
    )
    try:
        # ./tbm names its checkout's results in TBM_SUMMARY (it runs this from the caller's directory).
        rec = recommend(read_summary(a.summary or os.environ.get("TBM_SUMMARY") or SUMMARY), b)
    except NoResultsError as e:
        print(f"recommend: {e}", file=sys.stderr)
        return 2
    except NothingFitsError as e:
        print("Budgets: " + ", ".join(b.describe()[k] for k in LIMITS) + ".", file=sys.stderr)
        print(f"recommend: nothing fits. {e}", file=sys.stderr)
        return 1
    print(format_answer(rec, top=a.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
