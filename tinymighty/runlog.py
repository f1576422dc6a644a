"""Progress output for long jobs: to the terminal (so users see it) and to the job's log file."""

import sys
import time
from pathlib import Path


def make_log(path=None):
    start = time.monotonic()
    fh = None
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a", buffering=1)

    def log(msg):
        line = f"[{time.monotonic() - start:7.1f}s] {msg}"
        print(line, file=sys.stderr, flush=True)
        if fh:
            fh.write(line + "\n")

    return log
