"""Resume after a hard kill without `snakemake --unlock`.

Snakemake locks a working directory for the length of a run (`.snakemake/locks/`), so that two runs never
write the same files. A run killed with SIGKILL (or by a power cut) cannot remove its locks, and every later
run then stops with LockException until the user finds `--unlock`. Turning locking off (`nolock`) would
also drop the protection the lock gives, so instead every run of this workflow holds a shared flock on
`.snakemake/tinymighty.run` for as long as its Snakemake process lives: the kernel releases it when the
process dies, however it dies. A run that can take that flock exclusively therefore knows that no other
run of this workflow is alive in the directory, so any Snakemake lock there was left by a dead run, and it
removes them. While another run is alive, the locks stay and Snakemake's own LockException protects it.
(Job processes of a run whose Snakemake process alone was SIGKILLed are not covered: they hold no flock.)
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

_held: dict[str, int] = {}  # flock descriptors kept open for the life of the process


def clear_stale_locks(workdir=".", log=None) -> list[str]:
    """Takes this run's shared flock (once per process) and removes Snakemake's locks if no other run of
    this workflow is alive. Returns the names of the lock files removed. Call it from Snakemake's main
    process only: job processes on a cluster parse the Snakefile too."""
    meta = Path(workdir, ".snakemake")
    meta.mkdir(exist_ok=True)
    path = str((meta / "tinymighty.run").resolve())
    if path in _held:
        return []
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    removed = []
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass  # another run is alive: its locks are real
    else:
        locks = meta / "locks"
        for lock in sorted(locks.glob("*.lock")) if locks.is_dir() else []:
            lock.unlink(missing_ok=True)
            removed.append(lock.name)
    fcntl.flock(fd, fcntl.LOCK_SH)  # held until this process exits
    _held[path] = fd
    if removed and log:
        log(
            f"Removed {len(removed)} Snakemake lock file(s) in {meta / 'locks'} left by a run that was killed "
            "(no other run of this workflow is alive here); resuming."
        )
    return removed
