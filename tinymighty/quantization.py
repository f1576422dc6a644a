"""Quantization study (issue 4): QAT int8, PTQ/QAT n-bit sweeps, minifloat. Filled in by that work."""


def variants(config, arch):
    return []
