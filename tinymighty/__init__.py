"""Tiny but Mighty: keyword spotting from raw audio to a Cortex-M4, with measurements."""

import os

# tfmot only works with Keras 2; this must be set before TensorFlow is imported anywhere.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN reorders float sums; off keeps training bit-identical across runs.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
