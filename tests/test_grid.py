"""The grid is data: a bigger config dry-runs to hundreds of independent jobs with a valid DAG."""

import re

import pytest
from conftest import REPO, snakemake


@pytest.mark.slow
def test_large_grid_dry_run(tmp_path):
    out = snakemake(
        tmp_path, "-n", "--quiet", "rules", configfile=[REPO / "config.yaml", REPO / "examples" / "grid_large.yaml"]
    ).stdout
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}
    variant_jobs = sum(n for rule, n in counts.items() if rule == "prune" or rule.startswith(("quant_", "convert_")))
    assert variant_jobs >= 100, counts
    # Every variant of both architectures is measured on the device and in the report.
    assert counts["device"] == counts["codegen"] == counts["firmware_build"] >= 120
    # Two architectures x (the global seed + one extra training seed).
    assert counts["train"] == 4 and counts["report"] == 1
