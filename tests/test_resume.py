"""A killed run resumes by itself (issue 15): plain `snakemake --cores 4` (profiles/default) is SIGKILLed with its
whole process group mid-training and again mid-device, then simply run again: no `--unlock`, no
`--rerun-incomplete` typed, no QEMU left behind, and the same metrics as an uninterrupted run. A device result
that goes missing is rebuilt by the next run. Slow: three partial runs of a reduced tiny config (no studies)
next to one uninterrupted run, a few minutes in all."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, TINY

pytestmark = pytest.mark.slow

# The tiny config without the quantization and pruning studies and the held-out voices: every stage still
# runs once. A long BENCH keeps the device job running for a few seconds, so it can be killed mid-way.
OVERLAY = """
data: {holdout: {voices: []}}
quantization: {enabled: false}
pruning: {enabled: false}
firmware: {bench_runs: 1500}
"""
TIMING = re.compile(r"latency|tim(e|ing)|duration|elapsed|seconds|ticks|provenance|log_path", re.IGNORECASE)


def _start(workdir: Path, overlay: Path, *args) -> subprocess.Popen:
    """Plain `snakemake --cores 4`, as a user types it (the workflow profile is found by itself), in its own
    process group so that the whole run can be killed at once."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--configfile", str(TINY), str(overlay), "--cores", "4", *args]
    log = open(workdir / f"snakemake-{time.monotonic_ns()}.out", "w")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _kill_when(proc: subprocess.Popen, path: Path, pattern: str, limit: float = 900) -> None:
    """SIGKILLs the run's process group as soon as `path` contains `pattern`."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"the run ended ({proc.returncode}) before {path.name} showed {pattern!r}")
        if path.is_file() and pattern in path.read_text(errors="replace"):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.05)
    pytest.fail(f"{path} never showed {pattern!r}")


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if stat not in ("Z", "X") and text in cmdline and proc.name != str(os.getpid()):
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def _metrics(workdir: Path) -> dict:
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if not TIMING.search(k)}
        return [strip(v) for v in x] if isinstance(x, list) else x

    files = sorted((workdir / "results" / "variants").glob("*/*/metrics.json"))
    return {str(p.relative_to(workdir)): strip(json.loads(p.read_text())) for p in files}


def test_killed_runs_resume_with_plain_snakemake(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(OVERLAY)
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    reference.mkdir(), resumed.mkdir()
    uninterrupted = _start(reference, overlay)  # side by side with the interrupted one

    run = _start(resumed, overlay)
    _kill_when(run, resumed / "results/logs/train_tinyconv.log", "[train]")
    assert (resumed / ".snakemake/locks").is_dir() and list((resumed / ".snakemake/locks").iterdir())

    run = _start(resumed, overlay)  # the same command again: resumes, despite the lock and the half-trained model
    device_log = resumed / "results/firmware/tinyconv/ptq_int8/device.log"
    _kill_when(run, device_log, "> b'BENCH")
    time.sleep(1)
    assert not _processes_mentioning(str(resumed)), "a process of the killed run outlived it (QEMU?)"
    assert not (resumed / "results/firmware/tinyconv/ptq_int8/device.json").exists()

    run = _start(resumed, overlay)
    assert run.wait(1800) == 0, "the third run did not finish"
    assert uninterrupted.wait(1800) == 0
    outputs = "".join(p.read_text() for p in resumed.glob("snakemake-*.out"))
    assert "LockException" not in outputs and "IncompleteFilesException" not in outputs
    assert "left by a run that was killed" in outputs

    got, want = _metrics(resumed), _metrics(reference)
    assert got and got == want
    device = got["results/variants/tinyconv/ptq_int8/metrics.json"]["device"]
    assert device["matches_host"] and "OK EXIT" in device_log.read_text()

    # A device result that went missing (the lost-data case) is rebuilt by the next run.
    (resumed / "results/firmware/tinyconv/ptq_int8/device.json").unlink()
    plan = _start(resumed, overlay, "-n", "--quiet", "rules")
    assert plan.wait(300) == 0
    planned = sorted(resumed.glob("snakemake-*.out"))[-1].read_text()
    assert re.search(r"^device\s+1$", planned, re.M) and re.search(r"^report\s+1$", planned, re.M), planned
