"""Provenance recorded in every results file: package versions, git commit, config hash."""

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

_PACKAGES = ("tensorflow", "tf_keras", "tensorflow-model-optimization", "tflite-micro", "numpy", "librosa", "snakemake")
REPO = Path(__file__).resolve().parent.parent


def config_hash(config) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def provenance(config=None) -> dict:
    return {
        "versions": versions(),
        "git_commit": git_commit(),
        "config_hash": config_hash(config) if config is not None else None,
        "host": platform.machine(),
    }


def write_json(path, data, config=None) -> None:
    """Write results atomically (an interrupted run never leaves half a file), with provenance attached."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(data)
    payload["provenance"] = provenance(config)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=_jsonable) + "\n")
    os.replace(tmp, path)


def read_json(path):
    return json.loads(Path(path).read_text())


def read_results(path):
    """A results file without its provenance block, for nesting in another results file (which carries its own)."""
    data = read_json(path)
    data.pop("provenance", None)
    return data


def _jsonable(x):
    import numpy as np

    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x)}")
