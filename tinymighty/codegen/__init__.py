"""Ahead-of-time C code generation for int8 TFLite models, bit-exact to TFLM.

``generate()`` reads a fully int8-quantised ``.tflite`` (8-bit activations; weights int8, or INT4-packed)
through TensorFlow's flatbuffer schema bindings and writes ``model.c``/``model.h``: const weights, int32
biases with the input zero point folded in, per-channel requantisation multipliers computed exactly as TFLM
computes them at prepare time, a static arena laid out by a lifetime-based greedy planner, and
``tm_invoke()`` calling the kernels of ``firmware/kernels`` in order. Nothing is interpreted on device.
Dense convolutions get their weights packed into the int16 pairs the Cortex-M4's SIMD multiplies take
(``packing``); with ``sparse_threshold`` layers sparser than that store only their nonzeros
(``WeightEncoding`` is the seam for more); 4-bit weights stay packed in flash. A CONV_2D whose output feeds
only a FULLY_CONNECTED layer is fused with it (``fuse()``, on by default): the conv output, TinyConv's
largest tensor, is never stored. Convolutions pad border windows as they pack them, so no zero-point-padded
copy of their input exists either; 1x1 convolutions and 3x3 depthwise ones run in place, so a chain of them
needs about one activation of arena (the plan is in codegen.json's ``memory_plan`` and model.c).

``build_host()``/``run_host()`` compile the result with gcc and stream many
inputs through it; ``tflm_outputs()`` runs the same model in TFLM's Python
interpreter, the oracle the generated code must match bit for bit.

Modules, in the order generate() uses them: ``flatbuffer`` (read_graph),
``arithmetic`` (TFLite's prepare-time integer arithmetic), ``packing`` (the
SIMD weight layouts and the exactness checks of their shortcuts), ``lower`` (one
Step per operator), ``fuse``, ``memory`` (the arena plan), ``emit`` (the C text
and generate()); ``host`` builds and runs the result on the host; ``step`` is
the workflow step.
"""

from .arithmetic import activation_range, quantize_multiplier, softmax_params
from .emit import generate
from .flatbuffer import Graph, Op, Tensor, UnsupportedModelError, live_ops, read_graph
from .fuse import fuse
from .host import HOST_CFLAGS, KERNEL_DIR, KERNEL_HARNESS, build_host, run_host, tflm_outputs
from .lower import LOWERINGS, CArray, Step, WeightEncoding, dense_weights, encode_weights, lower, sparse_weights
from .memory import ARENA_ALIGN, Buffer, plan_memory

__all__ = [
    "ARENA_ALIGN",
    "HOST_CFLAGS",
    "KERNEL_DIR",
    "KERNEL_HARNESS",
    "LOWERINGS",
    "Buffer",
    "CArray",
    "Graph",
    "Op",
    "Step",
    "Tensor",
    "UnsupportedModelError",
    "WeightEncoding",
    "activation_range",
    "build_host",
    "dense_weights",
    "encode_weights",
    "fuse",
    "generate",
    "live_ops",
    "lower",
    "plan_memory",
    "quantize_multiplier",
    "read_graph",
    "run_host",
    "softmax_params",
    "sparse_weights",
    "tflm_outputs",
]
