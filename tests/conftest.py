"""Shared fixtures: the repository paths and one real end-to-end run of the tiny config."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "configs" / "tiny.yaml"
UNDER_CI = os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(items):
    """Everything that runs the whole workflow is `slow`: `pytest -m "not slow"` is the fast loop."""
    for item in items:
        if "tiny_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI a skip is a failure: a missing tool (QEMU, arm-none-eabi-gcc, espeak-ng, SLURM, tflite-micro)
    means a broken install, which must not turn into a green run."""
    outcome = yield
    report = outcome.get_result()
    if UNDER_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"


def slow_except(values, fast):
    """Parameters for a parametrized test: those not in `fast` are marked `slow`, so the fast loop keeps a sample
    and CI still runs them all."""
    return [pytest.param(v, marks=() if v in fast else pytest.mark.slow) for v in values]


def snakemake(workdir, *args, configfile=TINY, timeout=1800, check=True):
    """Run the real workflow (same Snakefile users run) in `workdir`; later config files override earlier ones."""
    configfiles = configfile if isinstance(configfile, (list, tuple)) else [configfile]
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        *map(str, configfiles),
        *args,
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny config run end to end once per session; tests read its results."""
    workdir = tmp_path_factory.mktemp("tiny_run")
    snakemake(workdir, "--cores", "2")
    return workdir
