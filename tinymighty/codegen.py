"""Ahead-of-time C code generation for int8 TFLite models, bit-exact to TFLM.

``generate()`` reads a fully int8-quantised ``.tflite`` through TensorFlow's
flatbuffer schema bindings and writes ``model.c``/``model.h``: const weights,
int32 biases with the input zero point folded in, per-channel requantisation
multipliers computed exactly as TFLM computes them at prepare time, a static
arena laid out by a lifetime-based greedy planner, and ``tm_invoke()`` calling
the kernels of ``firmware/kernels`` in order. Nothing is interpreted on device.
Conv/FC weights are dense by default; with ``sparse_threshold`` layers sparser
than that store only their nonzeros (``WeightEncoding`` is the seam for more).
A CONV_2D whose output feeds only a FULLY_CONNECTED layer is fused with it
(``fuse()``, on by default): the conv output, TinyConv's largest tensor, is
never stored. Convolutions pad border windows as they gather them, so no
zero-point-padded copy of their input exists either.

``build_host()``/``run_host()`` compile the result with gcc and stream many
inputs through it; ``tflm_outputs()`` runs the same model in TFLM's Python
interpreter, the oracle the generated code must match bit for bit.
"""
from __future__ import annotations

import hashlib
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
KERNEL_DIR = _ROOT / "firmware" / "kernels"
HOST_MAIN = _ROOT / "firmware" / "host" / "host_main.c"

ARENA_ALIGN = 4  # word alignment for every arena buffer
HOST_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")


class UnsupportedModelError(ValueError):
    """The model uses an operator, tensor type or layout the generator cannot compile."""


# --------------------------------------------------------------------------
# TFLite's prepare-time arithmetic, mirrored so the constants match bit for bit
# --------------------------------------------------------------------------

def _round_half_away(x: float) -> int:
    """std::round / TfLiteRound: halves go away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplier: real == mult * 2^(shift - 31), mult a Q31 significand."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:  # flush to zero like TFLite instead of shifting every bit out
        return 0, 0
    return q_fixed, shift


def activation_range(activation: int, scale, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 outputs (float32 divide, std::round)."""
    def quantize(f):
        return zero_point + _round_half_away(float(np.float32(f) / np.float32(scale)))

    lo, hi = -128, 127
    if activation == 1:  # RELU
        return max(lo, quantize(0.0)), hi
    if activation == 2:  # RELU_N1_TO_1
        return max(lo, quantize(-1.0)), min(hi, quantize(1.0))
    if activation == 3:  # RELU6
        return max(lo, quantize(0.0)), min(hi, quantize(6.0))
    if activation == 0:
        return lo, hi
    raise ValueError(f"fused activation {activation}")


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius with 5 integer bits (TFLM int8 softmax)."""
    int_bits = 5
    real = min(float(beta) * float(input_scale) * (1 << (31 - int_bits)), (1 << 31) - 1.0)
    mult, left_shift = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << int_bits) - 1) * (1 << (31 - int_bits)) / (1 << left_shift))
    return mult, left_shift, -radius


def _padding(stride: int, dilation: int, in_size: int, k: int, out_size: int) -> int:
    """ComputePadding: the top/left share; any odd extra pixel goes bottom/right."""
    span = (k - 1) * dilation + 1
    return max(((out_size - 1) * stride + span - in_size) // 2, 0)


def _out_size(same: bool, stride: int, dilation: int, in_size: int, k: int) -> int:
    span = (k - 1) * dilation + 1
    return (in_size + stride - 1) // stride if same else (in_size + stride - span) // stride


# --------------------------------------------------------------------------
# Reading the flatbuffer
# --------------------------------------------------------------------------

def _schema():
    from .tfutil import tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TF loads)
    from tensorflow.lite.python import schema_py_generated as schema_fb
    from tensorflow.lite.tools import flatbuffer_utils
    return schema_fb, flatbuffer_utils


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


_NP_TYPES = {"INT8": np.int8, "INT32": np.int32, "UINT8": np.uint8, "INT16": np.int16,
             "INT64": np.int64, "FLOAT32": np.float32}


@dataclass
class Tensor:
    index: int
    name: str
    type: str
    shape: tuple[int, ...]
    scales: np.ndarray          # float32, one per channel (or one)
    zero_points: np.ndarray     # int64
    data: np.ndarray | None     # constant contents, None for activations

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def scale(self) -> np.float32:
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if len(self.zero_points) else 0


@dataclass
class Op:
    index: int
    name: str
    inputs: list[Tensor | None]
    outputs: list[Tensor]
    options: object


@dataclass
class Graph:
    ops: list[Op]
    inputs: list[Tensor]
    outputs: list[Tensor]


def read_graph(path: Path) -> Graph:
    schema_fb, flatbuffer_utils = _schema()
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    if len(model.subgraphs) != 1:
        raise UnsupportedModelError(f"{path}: {len(model.subgraphs)} subgraphs, only 1 is supported")
    op_names = _enum_names(schema_fb.BuiltinOperator)
    type_names = _enum_names(schema_fb.TensorType)
    sg = model.subgraphs[0]

    def buffer_bytes(buf):  # read_model_from_bytearray already inlines >2 GB external buffers
        if buf is None or buf.data is None or not len(buf.data):
            return None
        return bytes(np.asarray(buf.data, np.uint8))

    tensors = []
    for i, t in enumerate(sg.tensors):
        q = t.quantization
        scales = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float32)
        zps = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [], np.int64)
        type_name = type_names.get(t.type, str(t.type))
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        content = buffer_bytes(model.buffers[t.buffer]) if t.buffer else None
        data = None
        if content is not None and type_name in _NP_TYPES:
            data = np.frombuffer(content, _NP_TYPES[type_name]).reshape(shape)
        elif content is not None:  # e.g. packed INT4: raw bytes, rejected by the op's type check
            data = np.frombuffer(content, np.uint8)
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        tensors.append(Tensor(i, name, type_name, shape, scales, zps, data))

    ops = []
    for i, o in enumerate(sg.operators or []):
        code = model.operatorCodes[o.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = op_names.get(builtin, str(builtin))
        if name == "CUSTOM":
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            name = f"CUSTOM({custom})"
        inputs = [tensors[j] if j >= 0 else None for j in o.inputs]
        outputs = [tensors[j] for j in o.outputs]
        ops.append(Op(i, name, inputs, outputs, o.builtinOptions))
    return Graph(ops, [tensors[j] for j in sg.inputs], [tensors[j] for j in sg.outputs])


def _data_inputs(op: Op) -> list[Tensor]:
    """Inputs whose values matter: RESHAPE's shape operand is static in the output tensor."""
    ins = op.inputs[:1] if op.name == "RESHAPE" else op.inputs
    return [t for t in ins if t is not None]


def live_ops(graph: Graph) -> tuple[list[Op], list[Op]]:
    """Splits ops into those the outputs depend on and dead ones.

    Keras' dynamic-batch Reshape computes its target shape at run time with
    SHAPE/STRIDED_SLICE/PACK; the shape is fixed in the output tensor, so those
    int32 ops are dead code for a batch-1 model and are dropped here.
    """
    needed = {t.index for t in graph.outputs}
    live = set()
    for op in reversed(graph.ops):
        if any(t.index in needed for t in op.outputs):
            live.add(op.index)
            needed.update(t.index for t in _data_inputs(op) if t.data is None)
    return ([op for op in graph.ops if op.index in live],
            [op for op in graph.ops if op.index not in live])


# --------------------------------------------------------------------------
# C emission helpers
# --------------------------------------------------------------------------

_C_TYPES = {np.dtype(np.int8): "int8_t", np.dtype(np.int32): "int32_t", np.dtype(np.uint16): "uint16_t",
            np.dtype(np.uint8): "uint8_t"}


@dataclass
class CArray:
    name: str
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes)

    def render(self, per_line: int = 16) -> str:
        vals = self.values.reshape(-1)
        ctype = _C_TYPES[vals.dtype]
        rows = [", ".join(str(int(v)) for v in vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
        body = ",\n    ".join(rows)
        return f"static const {ctype} {self.name}[{len(vals)}] TM_ALIGN(4) = {{\n    {body}\n}};\n"


def _c_struct(value) -> str:
    """Renders nested dicts as C designated initialisers (C99)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f".{k} = {_c_struct(v)}" for k, v in value.items()) + "}"
    return str(value)


def _c_float(x) -> str:
    return np.format_float_scientific(np.float32(x), unique=True) + "f"


@dataclass
class Step:
    """One kernel call in tm_invoke()."""
    op: Op
    kernel: str | None               # None: RESHAPE, an alias without code
    reads: list[Tensor]
    write: Tensor
    arrays: list[CArray] = field(default_factory=list)
    struct_type: str = ""
    struct: dict = field(default_factory=dict)
    scratch: int = 0
    macs: int = 0
    encoding: WeightEncoding | None = None
    substructs: list[tuple[str, str, dict]] = field(default_factory=list)  # (type, name, fields)
    fused: list[Step] = field(default_factory=list)  # the steps this one replaces


# --------------------------------------------------------------------------
# Lowering each supported operator
# --------------------------------------------------------------------------

class _OpContext:
    """One operator being lowered: generation options, and checks that raise
    UnsupportedModelError naming the file, the operator and the offending type."""

    def __init__(self, path: Path, op: Op, sparse_threshold: float | None = None):
        self.path, self.op, self.sparse_threshold = path, op, sparse_threshold

    def fail(self, what: str):
        raise UnsupportedModelError(f"{self.path}: operator #{self.op.index} {self.op.name}: {what}")

    def types(self, tensor: Tensor | None, *allowed: str, role: str):
        if tensor is None:
            self.fail(f"missing {role} tensor")
        if tensor.type not in allowed:
            self.fail(f"unsupported {role} tensor type {tensor.type} (expected {'/'.join(allowed)})")

    def int8_io(self, activations: int = 1):
        """The first `activations` inputs and the output must be quantised int8 run-time tensors."""
        for t in self.op.inputs[:activations]:
            self.types(t, "INT8", role="input")
            if t.data is not None:
                self.fail(f"constant input {t.name!r} is not supported")
        self.types(self.op.outputs[0], "INT8", role="output")
        for t in self.op.inputs[:activations] + self.op.outputs[:1]:
            if len(t.scales) != 1 or len(t.zero_points) != 1:
                self.fail(f"tensor {t.name!r} needs one scale and zero point")

    def activation(self, options) -> int:
        act = getattr(options, "fusedActivationFunction", 0) if options is not None else 0
        if act not in (0, 1, 2, 3):
            self.fail(f"unsupported fused activation {act}")
        return act


def _c_name(op: Op) -> str:
    return f"op{op.index}"


def _requant(ctx: _OpContext, in_t: Tensor, w_t: Tensor, bias_t: Tensor | None, out_t: Tensor,
             w_by_channel: np.ndarray, act: int) -> tuple[list[CArray], dict]:
    """Per-channel multipliers and zero-point-folded biases for a conv/FC layer.

    w_by_channel is [cout][k]: the folded bias is bias - in_zp * sum(w), which
    lets the kernels multiply raw int8 inputs and feed padding the zero point.
    """
    prefix = _c_name(ctx.op)
    cout = w_by_channel.shape[0]
    scales = np.broadcast_to(w_t.scales, (cout,))
    # PopulateConvolutionQuantizationParams / CalculateOpDataFullyConnected, in double.
    mults, shifts = zip(*(quantize_multiplier(float(in_t.scale) * float(s) / float(out_t.scale))
                          for s in scales))
    if max(shifts) > 31:
        ctx.fail("requantisation multiplier is out of range")
    bias = np.zeros(cout, np.int64) if bias_t is None else bias_t.data.astype(np.int64).reshape(cout)
    folded = bias - in_t.zero_point * w_by_channel.astype(np.int64).sum(axis=1)
    if np.abs(folded).max(initial=0) >= 2**31:
        ctx.fail("bias with the input zero point folded in overflows int32")
    lo, hi = activation_range(act, out_t.scale, out_t.zero_point)
    arrays = [CArray(f"{prefix}_bias", folded.astype(np.int32)),
              CArray(f"{prefix}_mult", np.asarray(mults, np.int32)),
              CArray(f"{prefix}_shift", np.asarray(shifts, np.int8))]
    rq = {"bias": f"{prefix}_bias", "mult": f"{prefix}_mult", "shift": f"{prefix}_shift",
          "out_zp": out_t.zero_point, "act_min": lo, "act_max": hi}
    return arrays, rq


@dataclass
class WeightEncoding:
    """How one layer's [cout][k] weight matrix is stored: the seam for encodings.

    kind picks the kernel ("dense": tm_*_s8, "sparse": tm_*_sparse_s8); fields
    fill the matching tm_matmul_t / tm_sparse_matmul_t besides k, cout and rq.
    """
    kind: str
    arrays: list[CArray]
    fields: dict
    sparsity: float
    matrix: np.ndarray | None = field(default=None, repr=False, compare=False)  # the [cout][k] weights

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


def dense_weights(prefix: str, w2d: np.ndarray) -> WeightEncoding:
    """Row-major int8 [cout][k]: what the SIMD dot products stream through."""
    w = CArray(f"{prefix}_w", np.ascontiguousarray(w2d, np.int8))
    return WeightEncoding("dense", [w], {"w": w.name}, float(np.mean(w2d == 0)), w2d)


def sparse_weights(prefix: str, w2d: np.ndarray) -> WeightEncoding:
    """Per output channel, the column indices (uint16) and values of its nonzeros.

    Three bytes per nonzero plus 4 per channel, so it beats dense storage above
    roughly 2/3 sparsity; the kernel is scalar, so speed breaks even later.
    """
    rows, cols = np.nonzero(w2d)
    start = np.searchsorted(rows, np.arange(w2d.shape[0] + 1)).astype(np.int32)
    # C has no empty arrays: an all-zero matrix keeps one never-read entry.
    idx = cols.astype(np.uint16) if len(cols) else np.zeros(1, np.uint16)
    val = w2d[rows, cols].astype(np.int8) if len(cols) else np.zeros(1, np.int8)
    arrays = [CArray(f"{prefix}_start", start), CArray(f"{prefix}_idx", idx), CArray(f"{prefix}_val", val)]
    return WeightEncoding("sparse", arrays, {"row_start": arrays[0].name, "idx": arrays[1].name,
                                             "val": arrays[2].name}, float(np.mean(w2d == 0)), w2d)


def encode_weights(ctx: _OpContext, w2d: np.ndarray) -> WeightEncoding:
    """Sparse when the layer's fraction of zero weights is above the threshold."""
    sparsity = float(np.mean(w2d == 0))
    if ctx.sparse_threshold is not None and sparsity > ctx.sparse_threshold and w2d.shape[1] <= 1 << 16:
        return sparse_weights(_c_name(ctx.op), w2d)
    return dense_weights(_c_name(ctx.op), w2d)


def _weights(ctx: _OpContext, t: Tensor | None, ndim: int) -> np.ndarray:
    ctx.types(t, "INT8", role="filter")
    if t.data is None or len(t.shape) != ndim:
        ctx.fail("filter must be a constant tensor of rank %d" % ndim)
    if np.any(t.zero_points != 0):
        ctx.fail("filter is not symmetrically quantised")
    return t.data


def _bias(ctx: _OpContext, op: Op) -> Tensor | None:
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    if bias is not None:
        ctx.types(bias, "INT32", role="bias")
        if bias.data is None:
            ctx.fail("bias must be constant")
    return bias


def _window(ctx: _OpContext, in_t: Tensor, out_t: Tensor, k_h: int, k_w: int, opts) -> dict:
    if len(in_t.shape) != 4 or len(out_t.shape) != 4 or in_t.shape[0] != 1:
        ctx.fail(f"expects NHWC tensors with batch 1, got {in_t.shape}")
    _, in_h, in_w, in_c = in_t.shape
    _, out_h, out_w, _ = out_t.shape
    same = opts.padding == 0
    dil_h = getattr(opts, "dilationHFactor", 1) or 1
    dil_w = getattr(opts, "dilationWFactor", 1) or 1
    expected = (_out_size(same, opts.strideH, dil_h, in_h, k_h), _out_size(same, opts.strideW, dil_w, in_w, k_w))
    if expected != (out_h, out_w):
        ctx.fail(f"output size {out_h}x{out_w} does not match padding (expected {expected})")
    return {"in_h": in_h, "in_w": in_w, "in_c": in_c, "out_h": out_h, "out_w": out_w,
            "k_h": k_h, "k_w": k_w, "stride_h": opts.strideH, "stride_w": opts.strideW,
            "dil_h": dil_h, "dil_w": dil_w,
            "pad_h": _padding(opts.strideH, dil_h, in_h, k_h, out_h),
            "pad_w": _padding(opts.strideW, dil_w, in_w, k_w, out_w),
            "in_zp": in_t.zero_point}


# Kernel and parameter struct per matmul-like operator and weight encoding.
_MATMUL_KERNELS = {
    ("CONV_2D", "dense"): ("tm_conv2d_s8", "tm_conv_t"),
    ("CONV_2D", "sparse"): ("tm_conv2d_sparse_s8", "tm_conv_sparse_t"),
    ("FULLY_CONNECTED", "dense"): ("tm_fully_connected_s8", "tm_fc_t"),
    ("FULLY_CONNECTED", "sparse"): ("tm_fully_connected_sparse_s8", "tm_fc_sparse_t"),
}


def _lower_conv(ctx: _OpContext, op: Op) -> Step:
    ctx.int8_io()
    in_t, out_t = op.inputs[0], op.outputs[0]
    w = _weights(ctx, op.inputs[1], 4)
    cout, k_h, k_w, w_in_c = w.shape
    win = _window(ctx, in_t, out_t, k_h, k_w, op.options)
    if w_in_c != win["in_c"]:
        ctx.fail("grouped convolution is not supported")
    w2d = w.reshape(cout, -1)
    arrays, rq = _requant(ctx, in_t, op.inputs[1], _bias(ctx, op), out_t, w2d, ctx.activation(op.options))
    enc = encode_weights(ctx, w2d)
    k = k_h * k_w * w_in_c
    kernel, struct_type = _MATMUL_KERNELS[op.name, enc.kind]
    return Step(op, kernel, [in_t], out_t, enc.arrays + arrays, struct_type,
                {"win": win, "mm": {**enc.fields, "k": k, "cout": cout, "rq": rq}},
                scratch=2 * k, macs=win["out_h"] * win["out_w"] * cout * k,
                encoding=enc)


def _lower_dwconv(ctx: _OpContext, op: Op) -> Step:
    ctx.int8_io()
    in_t, out_t = op.inputs[0], op.outputs[0]
    w = _weights(ctx, op.inputs[1], 4)
    _, k_h, k_w, cout = w.shape
    win = _window(ctx, in_t, out_t, k_h, k_w, op.options)
    if cout % win["in_c"]:
        ctx.fail("output channels are not a multiple of input channels")
    taps_by_channel = w.reshape(k_h * k_w, cout).T
    arrays, rq = _requant(ctx, in_t, op.inputs[1], _bias(ctx, op), out_t, taps_by_channel,
                          ctx.activation(op.options))
    enc = dense_weights(_c_name(op), w.reshape(k_h * k_w, cout))  # [tap][channel], not a matmul
    return Step(op, "tm_dwconv2d_s8", [in_t], out_t, enc.arrays + arrays, "tm_dwconv_t",
                {"win": win, "depth_mult": cout // win["in_c"], "w": enc.fields["w"], "rq": rq},
                scratch=k_h * k_w * win["in_c"], macs=win["out_h"] * win["out_w"] * cout * k_h * k_w,
                encoding=enc)


def _lower_fc(ctx: _OpContext, op: Op) -> Step:
    ctx.int8_io()
    in_t, out_t = op.inputs[0], op.outputs[0]
    if op.options is not None and getattr(op.options, "weightsFormat", 0) != 0:
        ctx.fail("shuffled weights format is not supported")
    w = _weights(ctx, op.inputs[1], 2)
    cout, k = w.shape
    if in_t.size % k:
        ctx.fail(f"input size {in_t.size} is not a multiple of {k}")
    arrays, rq = _requant(ctx, in_t, op.inputs[1], _bias(ctx, op), out_t, w, ctx.activation(op.options))
    enc = encode_weights(ctx, w)
    rows = in_t.size // k
    kernel, struct_type = _MATMUL_KERNELS[op.name, enc.kind]
    return Step(op, kernel, [in_t], out_t, enc.arrays + arrays, struct_type,
                {"rows": rows, "mm": {**enc.fields, "k": k, "cout": cout, "rq": rq}}, macs=rows * cout * k,
                encoding=enc)


def _lower_pool(ctx: _OpContext, op: Op) -> Step:
    ctx.int8_io()
    in_t, out_t = op.inputs[0], op.outputs[0]
    if in_t.scale != out_t.scale or in_t.zero_point != out_t.zero_point:
        ctx.fail("input and output quantisation differ")
    o = op.options
    win = _window(ctx, in_t, out_t, o.filterHeight, o.filterWidth, o)
    lo, hi = activation_range(ctx.activation(o), out_t.scale, out_t.zero_point)
    kernel = "tm_avg_pool_s8" if op.name == "AVERAGE_POOL_2D" else "tm_max_pool_s8"
    return Step(op, kernel, [in_t], out_t, [], "tm_pool_t", {"win": win, "act_min": lo, "act_max": hi})


def _lower_add(ctx: _OpContext, op: Op) -> Step:
    ctx.int8_io(2)
    a, b = op.inputs[:2]
    out_t = op.outputs[0]
    if a.shape != b.shape:
        ctx.fail(f"broadcasting {a.shape} + {b.shape} is not supported")
    # CalculateOpDataAdd: both inputs go to a common scale 2*max(s1, s2), 20 bits up.
    left_shift = 20
    twice_max = 2 * float(max(a.scale, b.scale))
    m1, s1 = quantize_multiplier(float(a.scale) / twice_max)
    m2, s2 = quantize_multiplier(float(b.scale) / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << left_shift) * float(out_t.scale)))
    if so > 0:  # TFLite requires all three multipliers below one
        ctx.fail("output scale too small for the int8 ADD rescaling")
    lo, hi = activation_range(ctx.activation(op.options), out_t.scale, out_t.zero_point)
    return Step(op, "tm_add_s8", [a, b], out_t, [], "tm_add_t",
                {"size": out_t.size, "in1_offset": -a.zero_point, "in2_offset": -b.zero_point,
                 "left_shift": left_shift, "in1_mult": m1, "in1_shift": s1, "in2_mult": m2,
                 "in2_shift": s2, "out_mult": mo, "out_shift": so, "out_zp": out_t.zero_point,
                 "act_min": lo, "act_max": hi})


def _lower_softmax(ctx: _OpContext, op: Op) -> Step:
    ctx.int8_io()
    in_t, out_t = op.inputs[0], op.outputs[0]
    if out_t.zero_point != -128 or out_t.scale != np.float32(1.0 / 256):
        ctx.fail("int8 softmax output must have scale 1/256 and zero point -128")
    depth = in_t.shape[-1]
    beta = op.options.beta if op.options is not None else 1.0
    mult, shift, diff_min = softmax_params(float(np.float32(beta)), float(in_t.scale))
    if shift < 0:  # QuantizeMultiplierGreaterThanOne's precondition
        ctx.fail("input scale * beta is too small for the int8 softmax")
    return Step(op, "tm_softmax_s8", [in_t], out_t, [], "tm_softmax_t",
                {"rows": in_t.size // depth, "depth": depth, "input_mult": mult,
                 "input_left_shift": shift, "diff_min": diff_min})


def _lower_reshape(ctx: _OpContext, op: Op) -> Step:
    ctx.int8_io()
    if op.inputs[0].size != op.outputs[0].size:
        ctx.fail("element count changes")
    return Step(op, None, [op.inputs[0]], op.outputs[0])


LOWERINGS: dict[str, Callable[[_OpContext, Op], Step]] = {
    "CONV_2D": _lower_conv,
    "DEPTHWISE_CONV_2D": _lower_dwconv,
    "FULLY_CONNECTED": _lower_fc,
    "AVERAGE_POOL_2D": _lower_pool,
    "MAX_POOL_2D": _lower_pool,
    "ADD": _lower_add,
    "SOFTMAX": _lower_softmax,
    "RESHAPE": _lower_reshape,
}


def lower(path: Path, graph: Graph, sparse_threshold: float | None = None) -> list[Step]:
    live, _ = live_ops(graph)
    steps = []
    for op in live:
        ctx = _OpContext(path, op, sparse_threshold)
        if op.name not in LOWERINGS:
            types = sorted({t.type for t in _data_inputs(op) + op.outputs})
            ctx.fail(f"unsupported operator (tensor types {'/'.join(types)})")
        steps.append(LOWERINGS[op.name](ctx, op))
    for role, ts in (("input", graph.inputs), ("output", graph.outputs)):
        if len(ts) != 1 or ts[0].type != "INT8":
            raise UnsupportedModelError(
                f"{path}: model must have one INT8 {role}, got {[t.type for t in ts]}")
    if not steps:
        raise UnsupportedModelError(f"{path}: model has no operators")
    return steps


# --------------------------------------------------------------------------
# Fusion
# --------------------------------------------------------------------------

_MATMUL_STRUCTS = {"dense": "tm_matmul_t", "sparse": "tm_sparse_matmul_t"}


class _Aliases:
    """Tensor index -> alias group: RESHAPE outputs share their input's bytes."""

    def __init__(self, steps: list[Step]):
        self.parent: dict[int, int] = {}
        for s in steps:
            if s.kernel is None:
                self.parent[self.root(s.write.index)] = self.root(s.reads[0].index)

    def root(self, i: int) -> int:
        while self.parent.get(i, i) != i:
            i = self.parent[i]
        return i


def _fusable_fc(conv: Step, steps: list[Step], aliases: _Aliases, graph: Graph) -> Step | None:
    """The FULLY_CONNECTED step that is the only consumer of conv's output (through
    reshapes), with that output as its single input row; None if there is none."""
    group = aliases.root(conv.write.index)
    if any(aliases.root(t.index) == group for t in graph.outputs + graph.inputs):
        return None
    users = [s for s in steps if s.kernel is not None
             and any(aliases.root(t.index) == group for t in s.reads)]
    if len(users) != 1 or users[0].op.name != "FULLY_CONNECTED":
        return None
    fc = users[0]
    if fc.struct.get("rows") != 1 or len(fc.reads) != 1 or fc.reads[0].size != conv.write.size:
        return None
    return fc


def _fused_conv_fc(conv: Step, fc: Step) -> Step:
    conv_kind, fc_kind = conv.encoding.kind, fc.encoding.kind
    mm_conv, mm_fc = f"{_c_name(conv.op)}_mm", f"{_c_name(fc.op)}_mm"
    fc_cout, cout, k = fc.struct["mm"]["cout"], conv.struct["mm"]["cout"], conv.struct["mm"]["k"]
    state = (8 if fc_kind == "sparse" else 4) * fc_cout  # accumulators (+ cursors)
    return Step(conv.op, f"tm_conv2d_fc_s8_{conv_kind[0]}{fc_kind[0]}", conv.reads, fc.write,
                conv.arrays + fc.arrays, "tm_conv_fc_t",
                {"win": conv.struct["win"], "conv": f"&{mm_conv}", "fc": f"&{mm_fc}"},
                scratch=state + 2 * k + 2 * cout, macs=conv.macs + fc.macs,
                substructs=[(_MATMUL_STRUCTS[conv_kind], mm_conv, conv.struct["mm"]),
                            (_MATMUL_STRUCTS[fc_kind], mm_fc, fc.struct["mm"])],
                fused=[conv, fc])


def _sparse_taps(prefix: str, w2d: np.ndarray, win: dict) -> tuple[list[CArray], dict]:
    """tm_sparse_taps_t: a sparse conv's nonzeros per output channel with each tap's
    byte offset in the input tensor (from the window's top-left pixel) and in a
    gathered [k_h][k_w][in_c] column."""
    rows, cols = np.nonzero(w2d)
    start = np.searchsorted(rows, np.arange(w2d.shape[0] + 1)).astype(np.int32)
    in_c, k_w = win["in_c"], win["k_w"]
    ky, rest = np.divmod(cols, k_w * in_c)
    kx, ic = np.divmod(rest, in_c)
    in_off = (ky * win["dil_h"] * win["in_w"] + kx * win["dil_w"]) * in_c + ic
    pad = (lambda a: a) if len(cols) else (lambda a: np.zeros(1, a.dtype))  # C has no empty arrays
    arrays = [CArray(f"{prefix}_start", start), CArray(f"{prefix}_val", pad(w2d[rows, cols].astype(np.int8))),
              CArray(f"{prefix}_in_off", pad(in_off.astype(np.int32))),
              CArray(f"{prefix}_col_off", pad(cols.astype(np.int32)))]
    return arrays, {"row_start": arrays[0].name, "in_off": arrays[2].name, "col_off": arrays[3].name,
                    "val": arrays[1].name}


def _sparse_columns(prefix: str, w2d: np.ndarray) -> tuple[list[CArray], dict]:
    """tm_sparse_cols_t: an FC's live input columns (any nonzero weight), ascending,
    each with its nonzeros' output rows and weights."""
    cols, rows = np.nonzero(w2d.T)  # column-major: by column, rows ascending within
    live, cnt = np.unique(cols, return_counts=True)
    pad = (lambda a: a) if len(cols) else (lambda a: np.zeros(1, a.dtype))
    arrays = [CArray(f"{prefix}_fcol", pad(live.astype(np.uint16))), CArray(f"{prefix}_fcnt", pad(cnt.astype(np.uint8))),
              CArray(f"{prefix}_frow", pad(rows.astype(np.uint8))),
              CArray(f"{prefix}_fval", pad(w2d[rows, cols].astype(np.int8)))]
    return arrays, {"col": arrays[0].name, "cnt": arrays[1].name, "row": arrays[2].name, "val": arrays[3].name,
                    "n_cols": len(live)}


def _column_fusable(conv: Step, fc: Step) -> bool:
    """tm_conv2d_fc_s8_sc applies: both sparse, FC rows and columns within its index types."""
    return (conv.encoding.kind == fc.encoding.kind == "sparse" and fc.struct["mm"]["cout"] <= 255
            and fc.struct["mm"]["k"] <= 1 << 16)


def _fused_conv_fc_columns(conv: Step, fc: Step) -> Step:
    """Sparse conv + sparse FC as tm_conv2d_fc_s8_sc: conv taps with precomputed
    input offsets, FC weights by live column, so that only the conv outputs some
    nonzero FC weight reads are computed. Replaces both layers' CSR arrays."""
    mm_conv, mm_fc = f"{_c_name(conv.op)}_mm", f"{_c_name(fc.op)}_mm"
    cmm, fmm = conv.struct["mm"], fc.struct["mm"]
    taps, taps_fields = _sparse_taps(_c_name(conv.op), conv.encoding.matrix, conv.struct["win"])
    fcols, fcols_fields = _sparse_columns(_c_name(fc.op), fc.encoding.matrix)
    rq_arrays = [a for s in (conv, fc) for a in s.arrays if all(a is not e for e in s.encoding.arrays)]
    return Step(conv.op, "tm_conv2d_fc_s8_sc", conv.reads, fc.write, taps + fcols + rq_arrays, "tm_conv_fc_t",
                {"win": conv.struct["win"], "conv": f"&{mm_conv}", "fc": f"&{mm_fc}"},
                scratch=4 * fmm["cout"] + cmm["k"], macs=conv.macs + fc.macs,
                substructs=[("tm_sparse_taps_t", mm_conv, {**taps_fields, "k": cmm["k"], "cout": cmm["cout"],
                                                           "rq": cmm["rq"]}),
                            ("tm_sparse_cols_t", mm_fc, {**fcols_fields, "k": fmm["k"], "cout": fmm["cout"],
                                                         "rq": fmm["rq"]})],
                fused=[conv, fc])


def fuse(graph: Graph, steps: list[Step], sparse_columns: bool = True) -> list[Step]:
    """Fuses each CONV_2D whose output feeds only a FULLY_CONNECTED layer (directly or
    through RESHAPEs, as one input row) into one kernel call that multiplies every
    conv output into the FC's accumulators as soon as it is computed: the conv
    output tensor, TinyConv's largest, is never stored. Integer sums do not depend
    on their order, so the result is bit for bit the unfused one. Anything else
    (the conv output also read elsewhere, or a model output; an FC over several
    rows; no FC at all) keeps the separate kernels.

    With sparse_columns, a pair whose conv and FC are both sparse-encoded gets
    tm_conv2d_fc_s8_sc, which skips the conv outputs that only zero FC weights
    read (see _fused_conv_fc_columns); otherwise tm_conv2d_fc_s8_ss."""
    aliases = _Aliases(steps)
    out = list(steps)
    for conv in steps:
        if conv.op.name != "CONV_2D" or conv.kernel is None:
            continue
        fc = _fusable_fc(conv, out, aliases, graph)
        if fc is None:
            continue
        group = aliases.root(conv.write.index)
        dropped = {id(fc)} | {id(s) for s in out if s.kernel is None and aliases.root(s.reads[0].index) == group}
        fused = (_fused_conv_fc_columns(conv, fc) if sparse_columns and _column_fusable(conv, fc)
                 else _fused_conv_fc(conv, fc))
        out = [fused if s is conv else s for s in out if id(s) not in dropped]
    return out


# --------------------------------------------------------------------------
# Memory planning
# --------------------------------------------------------------------------

@dataclass
class Buffer:
    name: str
    size: int
    first: int   # first step that writes it
    last: int    # last step that reads it
    offset: int = -1


def _align(n: int) -> int:
    return (n + ARENA_ALIGN - 1) // ARENA_ALIGN * ARENA_ALIGN


def plan_memory(buffers: list[Buffer]) -> int:
    """Greedy by size (largest first), each at the lowest offset that does not
    overlap a placed buffer whose lifetime intersects. Returns the arena size."""
    placed: list[Buffer] = []
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first, b.name)):
        conflicts = sorted((p for p in placed if p.first <= buf.last and buf.first <= p.last),
                           key=lambda p: p.offset)
        offset = 0
        for p in conflicts:
            if offset + buf.size <= p.offset:
                break
            offset = max(offset, _align(p.offset + p.size))
        buf.offset = offset
        placed.append(buf)
    return _align(max((b.offset + b.size for b in buffers), default=0))


def _storage(path: Path, graph: Graph, steps: list[Step]) -> tuple[dict, dict, list[Buffer]]:
    """Maps every activation tensor to "in", "out" or an arena Buffer, and each
    step that needs scratch to its own Buffer; returns (tensors, scratch, buffers).

    RESHAPE outputs join their input's group (same bytes, no copy). The group
    holding the model input is the caller's const input buffer and the group
    holding the model output is written straight into the caller's output.
    """
    root = _Aliases(steps).root
    in_root, out_root = root(graph.inputs[0].index), root(graph.outputs[0].index)
    if in_root == out_root:
        raise UnsupportedModelError(f"{path}: model output is a reshape of its input")
    spans: dict[int, list[int]] = {}
    sizes: dict[int, int] = {}
    for i, s in enumerate(steps):
        for t in s.reads + [s.write]:
            r = root(t.index)
            span = spans.setdefault(r, [i, i])
            span[0], span[1] = min(span[0], i), max(span[1], i)
            sizes[r] = max(sizes.get(r, 0), t.size)

    buffers, by_root = [], {}
    for r in sorted(spans):
        if r not in (in_root, out_root):
            by_root[r] = Buffer(f"t{r}", sizes[r], *spans[r])
            buffers.append(by_root[r])
    scratch = {}
    for i, s in enumerate(steps):
        if s.scratch:
            scratch[s.op.index] = Buffer(f"{_c_name(s.op)}_scratch", s.scratch, i, i)
            buffers.append(scratch[s.op.index])

    def where(t: Tensor):
        r = root(t.index)
        return "in" if r == in_root else "out" if r == out_root else by_root[r]

    return {t.index: where(t) for s in steps for t in s.reads + [s.write]}, scratch, buffers


# --------------------------------------------------------------------------
# Code generation entry points
# --------------------------------------------------------------------------

_HEADER = """\
/* Generated by tinymighty.codegen from model {hash}. Do not edit. */
#ifndef TM_MODEL_H
#define TM_MODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define TM_MODEL_HASH "{hash}"
#define TM_INPUT_SIZE {in_size}
#define TM_OUTPUT_SIZE {out_size}
#define TM_ARENA_SIZE {arena}
#define TM_WEIGHT_BYTES {weights}
#define TM_INPUT_SCALE {in_scale}
#define TM_INPUT_ZERO_POINT ({in_zp})
#define TM_OUTPUT_SCALE {out_scale}
#define TM_OUTPUT_ZERO_POINT ({out_zp})

/* TM_WEIGHT_BYTES counts the const arrays: weights, biases, multipliers and shifts. */

/* Runs one inference: TM_INPUT_SIZE int8 in, TM_OUTPUT_SIZE int8 out. Returns 0 on
 * success. Not reentrant: all activations live in one static arena. */
int tm_invoke(const int8_t *in, int8_t *out);

#ifdef __cplusplus
}}
#endif

#endif /* TM_MODEL_H */
"""


def _emit_source(model_hash: str, steps: list[Step], where: dict, scratch: dict) -> str:
    def ptr(t: Tensor) -> str:
        w = where[t.index]
        return w if isinstance(w, str) else f"tm_arena + {w.offset}"

    parts = [f"/* Generated by tinymighty.codegen from model {model_hash}. Do not edit. */\n",
             "#include <stddef.h>\n\n#include \"model.h\"\n#include \"tm_kernels.h\"\n\n",
             "static int8_t tm_arena[TM_ARENA_SIZE] TM_ALIGN(16);\n"]
    calls = []
    for s in steps:
        op_names = "+".join(f.op.name for f in s.fused) or s.op.name
        label = "/* %s %s */" % (op_names, s.write.name.replace("*/", "* /"))
        if s.kernel is None:
            calls.append(f"    {label} /* alias: no code */")
            continue
        parts.append(f"\n{label}\n")
        parts.extend(a.render() for a in s.arrays)
        parts.extend(f"static const {t} {n} = {_c_struct(v)};\n" for t, n, v in s.substructs)
        name = _c_name(s.op)
        parts.append(f"static const {s.struct_type} {name} = {_c_struct(s.struct)};\n")
        args = [f"&{name}"] + [ptr(t) for t in s.reads] + [ptr(s.write)]
        if s.scratch:
            args.append(f"tm_arena + {scratch[s.op.index].offset}")
        calls.append(f"    {s.kernel}({', '.join(args)}); {label}")
    parts.append("\nint tm_invoke(const int8_t *in, int8_t *out)\n{\n"
                 "    if (in == NULL || out == NULL) {\n        return -1;\n    }\n"
                 + "\n".join(calls) + "\n    (void)tm_arena;\n    return 0;\n}\n")
    return "".join(parts)


def generate(tflite_path, out_dir, sparse_threshold: float | None = None, fuse_conv_fc: bool = True,
             sparse_columns: bool = True) -> dict:
    """Writes model.c and model.h for an int8 .tflite into out_dir; returns a summary dict.

    sparse_threshold: CONV_2D/FULLY_CONNECTED layers whose fraction of zero
    weights is above it store only their nonzeros (None keeps all dense).
    fuse_conv_fc: fuse CONV_2D -> (RESHAPE) -> FULLY_CONNECTED where the pattern
    holds (see fuse()); the summary's "fused" lists what was fused.
    sparse_columns: a fused pair of sparse layers computes only the conv outputs
    that nonzero FC weights read (tm_conv2d_fc_s8_sc); False keeps the row-sparse
    tm_conv2d_fc_s8_ss.
    """
    path = Path(tflite_path)
    model_hash = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    graph = read_graph(path)
    lowered = lower(path, graph, sparse_threshold)
    steps = fuse(graph, lowered, sparse_columns) if fuse_conv_fc else lowered
    fused_into = {f.op.index: s.kernel for s in steps for f in s.fused}
    where, scratch, buffers = _storage(path, graph, steps)
    arena = max(plan_memory(buffers), ARENA_ALIGN)  # C forbids zero-length arrays
    weight_bytes = sum(a.nbytes for s in steps for a in s.arrays)
    inp, outp = graph.inputs[0], graph.outputs[0]

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.h").write_text(_HEADER.format(
        hash=model_hash, in_size=inp.size, out_size=outp.size, arena=arena, weights=weight_bytes,
        in_scale=_c_float(inp.scale), in_zp=inp.zero_point,
        out_scale=_c_float(outp.scale), out_zp=outp.zero_point))
    (out / "model.c").write_text(_emit_source(model_hash, steps, where, scratch))

    return {
        "model_hash": model_hash,
        "ops": [s.op.name for s in lowered],
        "pruned_ops": [op.name for op in live_ops(graph)[1]],
        "macs": sum(s.macs for s in steps),
        "layers": [{"op": s.op.name, "index": s.op.index, "kernel": fused_into.get(s.op.index, s.kernel),
                    "macs": s.macs, "encoding": s.encoding.kind if s.encoding else None,
                    "sparsity": s.encoding.sparsity if s.encoding else None,
                    "weight_bytes": s.encoding.nbytes if s.encoding else 0} for s in lowered],
        "fuse_conv_fc": fuse_conv_fc,
        "fused": [{"kernel": s.kernel, "ops": [f.op.name for f in s.fused],
                   "indices": [f.op.index for f in s.fused], "intermediate_bytes": s.fused[0].write.size,
                   "encoding": "sparse-taps+sparse-columns" if s.kernel == "tm_conv2d_fc_s8_sc"
                   else "+".join(f.encoding.kind for f in s.fused),
                   "weight_bytes": sum(a.nbytes for a in s.arrays),
                   **({"live_columns": s.substructs[1][2]["n_cols"]} if s.kernel == "tm_conv2d_fc_s8_sc" else {})}
                  for s in steps if s.fused],
        "arena_size": arena,
        "activation_bytes": sum(b.size for b in buffers),  # what the arena would be without sharing
        "weight_bytes": weight_bytes,
        "input_shape": list(inp.shape),
        "output_shape": list(outp.shape),
        "input_scale": float(inp.scale),
        "input_zero_point": inp.zero_point,
        "output_scale": float(outp.scale),
        "output_zero_point": outp.zero_point,
        "files": [str(out / "model.c"), str(out / "model.h")],
    }


# --------------------------------------------------------------------------
# Host build and execution
# --------------------------------------------------------------------------

def build_host(model_dir, build_dir, *, emulate_dsp: bool = False, cc: str = "gcc",
               extra_cflags: tuple[str, ...] = ()) -> Path:
    """Compiles model.c + kernels + host harness into an executable.

    emulate_dsp compiles the Cortex-M4 SIMD code path with portable stand-ins
    for its instructions, so host tests cover it bit for bit too.
    """
    model_dir, build_dir = Path(model_dir), Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    exe = build_dir / ("tm_host_dsp" if emulate_dsp else "tm_host")
    cmd = [cc, *HOST_CFLAGS, *(["-DTM_EMULATE_DSP"] if emulate_dsp else []), *extra_cflags,
           f"-I{model_dir}", f"-I{KERNEL_DIR}", str(model_dir / "model.c"),
           *sorted(str(p) for p in KERNEL_DIR.glob("*.c")), str(HOST_MAIN), "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"host build failed:\n{' '.join(cmd)}\n{proc.stderr}")
    return exe


def run_host(exe, inputs: np.ndarray) -> np.ndarray:
    """Streams N int8 inputs through the host harness; returns (N, TM_OUTPUT_SIZE) int8."""
    x = np.ascontiguousarray(inputs, dtype=np.int8)
    if x.size == 0:
        raise ValueError("run_host needs at least one input")
    x = x.reshape(len(x), -1)
    proc = subprocess.run([str(exe)], input=x.tobytes(), capture_output=True)
    if proc.returncode:
        raise RuntimeError(f"{exe} exited with {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return np.frombuffer(proc.stdout, np.int8).reshape(len(x), -1)


def tflm_outputs(tflite_path, inputs: np.ndarray) -> np.ndarray:
    """Runs inputs one by one through TFLM's Python interpreter; returns (N, output_size) int8."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_file(str(tflite_path))
    shape = tuple(interp.get_input_details(0)["shape"])
    x = np.asarray(inputs, np.int8).reshape((-1,) + shape)
    outs = []
    for sample in x:
        interp.set_input(sample, 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0), np.int8).reshape(-1))
    return np.stack(outs)
