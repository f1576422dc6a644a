"""The house style, checked on every run so that drift fails CI: ruff (lint and format), snakefmt, clang-format."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _tool(name):
    exe = shutil.which(name, path=f"{BIN}:{os.environ.get('PATH', '')}")
    if exe is None:
        pytest.skip(f"{name} is not installed (./tbm installs it)")
    return exe


def _run(*cmd):
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    return proc.returncode, (proc.stdout + proc.stderr)[-6000:]


def _tracked(*patterns):
    out = subprocess.run(["git", "ls-files", *patterns], cwd=REPO, capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if (REPO / line).exists()]


def test_ruff_lint():
    code, out = _run(_tool("ruff"), "check", ".")
    assert code == 0, f"`ruff check .` found problems (fix them, or `ruff check --fix .`):\n{out}"


def test_ruff_format():
    code, out = _run(_tool("ruff"), "format", "--check", ".")
    assert code == 0, f"Python is not formatted; run `ruff format .`:\n{out}"


def test_snakefmt():
    code, out = _run(_tool("snakefmt"), "--check", "Snakefile", "rules")
    assert code == 0, f"rules are not formatted; run `snakefmt Snakefile rules`:\n{out}"


def test_clang_format():
    sources = _tracked("firmware/*.c", "firmware/*.h")
    code, out = _run(_tool("clang-format"), "--dry-run", "--Werror", *sources)
    assert code == 0, f"C is not formatted; run `clang-format -i` on the files named:\n{out}"
