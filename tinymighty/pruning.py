"""Pruning study (issue 5): unstructured, structured, 2:4, prune+QAT. Filled in by that work."""


def variants(config, arch):
    return []
