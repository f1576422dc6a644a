"""The architecture document's rule graph is the workflow's: regenerate it when the rules change."""

import re

from conftest import REPO, snakemake


def _edges(dot):
    """Rule-to-rule edges by name: Snakemake numbers nodes and orders edges differently from run to run."""
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, flags=re.M))
    return {(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M)}, set(names.values())


def test_checked_in_rulegraph_is_current(tmp_path):
    current = snakemake(tmp_path, "--rulegraph", configfile=REPO / "config.yaml").stdout
    checked_in = (REPO / "docs" / "rulegraph.dot").read_text()
    assert _edges(current) == _edges(checked_in), (
        "docs/rulegraph.dot is out of date; run: snakemake --rulegraph > docs/rulegraph.dot && "
        "dot -Tsvg docs/rulegraph.dot -o docs/rulegraph.svg"
    )
