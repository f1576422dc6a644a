"""Imports in the package run one way: a stage imports only the stages below it (ARCHITECTURE.md)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tinymighty"

# Lowest first. A module may import its own layer and the layers before it; the studies' grids are
# composed in `studies` only, so nothing below it can reach the composed grid.
LAYERS = [
    {"config", "errors", "provenance", "runlock", "runlog", "tfutil", "npio", "variant", "budgets", "plots"},
    {"data"},
    {"model"},
    {"quantization", "pruning"},
    {"codegen"},
    {"device"},
    {"studies"},
    {"report"},
]
# Siblings in one layer stay independent of each other.
INDEPENDENT = [("quantization", "pruning")]


def _layer(name):
    for i, layer in enumerate(LAYERS):
        if name in layer:
            return i
    raise AssertionError(f"tinymighty.{name} is in no layer of tests/test_layers.py: add it where it belongs")


def _part(path):
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imported_parts(path):
    """Top-level tinymighty parts that a module imports, absolute or relative."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rel_pkg = path.relative_to(PACKAGE).parent.parts
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "tinymighty" and len(parts) > 1:
                    yield parts[1], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel_pkg[: len(rel_pkg) - (node.level - 1)])
                parts = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "tinymighty":
                parts = node.module.split(".")[1:]
            else:
                continue
            if parts:
                yield parts[0], node.lineno
            else:  # `from . import x` at the package root, or `from tinymighty import x`
                for alias in node.names:
                    yield alias.name, node.lineno


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.name != "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    own = _part(path)
    bad = []
    for other, line in _imported_parts(path):
        if other == own:
            continue
        if _layer(other) > _layer(own):
            bad.append(f"line {line}: {own} (layer {_layer(own)}) imports {other} (layer {_layer(other)})")
        if (own, other) in INDEPENDENT or (other, own) in INDEPENDENT:
            bad.append(f"line {line}: {own} imports its sibling {other}")
    assert not bad, f"{path.relative_to(PACKAGE.parent)}:\n" + "\n".join(bad)


def test_every_part_has_a_layer():
    for path in MODULES:
        _layer(_part(path))
