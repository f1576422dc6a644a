"""Lowering each supported operator to one kernel call (a Step) with its const arrays and parameter struct.

Step, CArray (a const array of the generated C) and Aliases (RESHAPE outputs share their input's bytes)
are what fuse, memory and emit work on. Conv/FC weights are dense by default; with ``sparse_threshold`` layers sparser
than that store only their nonzeros (``WeightEncoding`` is the seam for more).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import packing
from .arithmetic import activation_range, out_size, padding, quantize_multiplier, softmax_params
from .flatbuffer import Graph, Op, Tensor, UnsupportedModelError, data_inputs, live_ops

_C_TYPES = {
    np.dtype(np.int8): "int8_t",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.uint16): "uint16_t",
    np.dtype(np.uint8): "uint8_t",
}


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
        rows = [", ".join(str(int(v)) for v in vals[i : i + per_line]) for i in range(0, len(vals), per_line)]
        body = ",\n    ".join(rows)
        return f"static const {ctype} {self.name}[{len(vals)}] TM_ALIGN(4) = {{\n    {body}\n}};\n"


@dataclass
class CStructArray:
    """A const array of C structs (fields: C expressions, e.g. a number or an address in another array);
    every field is one 32-bit word on the target."""

    name: str
    ctype: str
    rows: list[dict]

    @property
    def nbytes(self) -> int:
        return 4 * sum(len(r) for r in self.rows)

    def render(self) -> str:
        body = ",\n    ".join("{" + ", ".join(f".{k} = {v}" for k, v in r.items()) + "}" for r in self.rows)
        return f"static const {self.ctype} {self.name}[{len(self.rows)}] TM_ALIGN(4) = {{\n    {body}\n}};\n"


@dataclass
class Step:
    """One kernel call in tm_invoke()."""

    op: Op
    kernel: str | None  # None: RESHAPE, an alias without code
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
    inplace: bool = False  # the kernel may write its output over its (first) input


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


def c_name(op: Op) -> str:
    return f"op{op.index}"


@dataclass
class _Requant:
    """A conv/FC layer's requantisation, as TFLM computes it at prepare time."""

    folded: np.ndarray  # int64 biases with the input zero point folded in
    mults: np.ndarray
    shifts: np.ndarray
    out_zp: int
    act_min: int
    act_max: int


def _rq_numbers(
    ctx: _OpContext, in_t: Tensor, w_t: Tensor, bias_t: Tensor | None, out_t: Tensor, w_by_channel: np.ndarray, act: int
) -> _Requant:
    """Per-channel multipliers and zero-point-folded biases for a conv/FC layer.

    w_by_channel is [cout][k]: the folded bias is bias - in_zp * sum(w), which
    lets the kernels multiply raw int8 inputs and feed padding the zero point.
    """
    cout = w_by_channel.shape[0]
    scales = np.broadcast_to(w_t.scales, (cout,))
    # PopulateConvolutionQuantizationParams / CalculateOpDataFullyConnected, in double.
    mults, shifts = zip(
        *(quantize_multiplier(float(in_t.scale) * float(s) / float(out_t.scale)) for s in scales), strict=False
    )
    if max(shifts) > 31:
        ctx.fail("requantisation multiplier is out of range")
    bias = np.zeros(cout, np.int64) if bias_t is None else bias_t.data.astype(np.int64).reshape(cout)
    folded = bias - in_t.zero_point * w_by_channel.astype(np.int64).sum(axis=1)
    if np.abs(folded).max(initial=0) >= 2**31:
        ctx.fail("bias with the input zero point folded in overflows int32")
    lo, hi = activation_range(act, out_t.scale, out_t.zero_point)
    return _Requant(folded, np.asarray(mults, np.int64), np.asarray(shifts, np.int64), out_t.zero_point, lo, hi)


def _requant(
    ctx: _OpContext, in_t: Tensor, w_t: Tensor, bias_t: Tensor | None, out_t: Tensor, w_by_channel: np.ndarray, act: int
) -> tuple[list[CArray], dict]:
    """tm_requant_t: the folded biases, multipliers and shifts as const arrays, and the struct."""
    prefix = c_name(ctx.op)
    r = _rq_numbers(ctx, in_t, w_t, bias_t, out_t, w_by_channel, act)
    arrays = [
        CArray(f"{prefix}_bias", r.folded.astype(np.int32)),
        CArray(f"{prefix}_mult", r.mults.astype(np.int32)),
        CArray(f"{prefix}_shift", r.shifts.astype(np.int8)),
    ]
    rq = {
        "bias": f"{prefix}_bias",
        "mult": f"{prefix}_mult",
        "shift": f"{prefix}_shift",
        "out_zp": r.out_zp,
        "act_min": r.act_min,
        "act_max": r.act_max,
    }
    return arrays, rq


def _packed_requant(prefix: str, r: _Requant, bound: np.ndarray, dbl: int) -> tuple[list[CArray], dict]:
    """tm_prq_t: multipliers, shifts and, where the fast form is exact, its rounding constants (and the
    shifts as right shifts)."""
    rnd = packing.fast_rounding(r.shifts, r.out_zp, bound, dbl)
    arrays = [CArray(f"{prefix}_mult", r.mults.astype(np.int32))]
    if rnd is not None:  # the fast form shifts right by e = -shift: stored as such
        arrays.append(CArray(f"{prefix}_rnd", rnd))
    arrays.append(CArray(f"{prefix}_shift", (r.shifts if rnd is None else -r.shifts).astype(np.int8)))
    rq = {
        "mult": f"{prefix}_mult",
        "rnd": f"{prefix}_rnd" if rnd is not None else "NULL",
        "shift": f"{prefix}_shift",
        "out_zp": r.out_zp,
        "act_min": r.act_min,
        "act_max": r.act_max,
    }
    return arrays, rq


def pconv_scratch(kp: int, cout: int) -> int:
    """tm_nn_pconv_driver's own scratch: packed activations of three pixels, then their accumulators,
    which a padded receptive field (2 * kp bytes) shares."""
    return 12 * kp + max(24 * ((cout + 1) // 2), 2 * kp)


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
    return WeightEncoding(
        "sparse",
        arrays,
        {"row_start": arrays[0].name, "idx": arrays[1].name, "val": arrays[2].name},
        float(np.mean(w2d == 0)),
        w2d,
    )


def packed_weights(
    prefix: str, w2d: np.ndarray, r: _Requant, int4: np.ndarray | None = None
) -> tuple[WeightEncoding, list[CArray]]:
    """tm_pmm_t: a dense [cout][k] matrix packed into int16 pairs with its biases (packing.packed_matmul),
    doubled where exact; returns the encoding (fields: the struct) and the requantisation arrays. int4:
    TFLite's packed bytes of 4-bit weights, kept as they are (encoding "int4"), with the biases beside
    them; the kernel unpacks them into its scratch (packed_scratch)."""
    bound = packing.acc_bound(r.folded, w2d)
    dbl = packing.doubling(bound)
    stream, kp = packing.packed_matmul(w2d, r.folded, dbl)
    rq_arrays, rq = _packed_requant(prefix, r, bound, dbl)
    fields = {"k": w2d.shape[1], "kp": kp, "cout": w2d.shape[0], "dbl": dbl}
    if int4 is None:
        w = CArray(f"{prefix}_pw", stream)
        enc = WeightEncoding("dense", [w], {"w": w.name, **fields, "rq": rq}, float(np.mean(w2d == 0)), w2d)
    else:
        w4 = CArray(f"{prefix}_w4", np.asarray(int4, np.uint8))
        bias = CArray(f"{prefix}_bias", (r.folded * (2 if dbl else 1)).astype(np.int32))
        fields = {"w": "NULL", **fields, "w4": w4.name, "bias": bias.name, "unpack": "tm_unpack_w4", "rq": rq}
        enc = WeightEncoding("int4", [w4, bias], fields, float(np.mean(w2d == 0)), w2d)
    return enc, rq_arrays


def packed_scratch(fields: dict) -> int:
    """Scratch a packed product needs beyond pconv_scratch: the unpacked stream of 4-bit weights."""
    return (8 + 8 * fields["kp"]) * ((fields["cout"] + 1) // 2) if fields.get("w4") else 0


def _sparse_wanted(ctx: _OpContext, w2d: np.ndarray) -> bool:
    if _int4(ctx.op):  # 4-bit weights stay packed: sparse storage would take more bytes
        return False
    sparsity = float(np.mean(w2d == 0))
    return ctx.sparse_threshold is not None and sparsity > ctx.sparse_threshold and w2d.shape[1] <= 1 << 16


def encode_weights(ctx: _OpContext, w2d: np.ndarray) -> WeightEncoding:
    """Sparse when the layer's fraction of zero weights is above the threshold."""
    if _sparse_wanted(ctx, w2d):
        return sparse_weights(c_name(ctx.op), w2d)
    return dense_weights(c_name(ctx.op), w2d)


def _weights(ctx: _OpContext, t: Tensor | None, ndim: int) -> np.ndarray:
    """The filter as int8 values (INT4 filters unpacked: their packed bytes stay in t.data)."""
    ctx.types(t, "INT8", "INT4", role="filter")
    if t.data is None or len(t.shape) != ndim:
        ctx.fail("filter must be a constant tensor of rank %d" % ndim)
    if np.any(t.zero_points != 0):
        ctx.fail("filter is not symmetrically quantised")
    return packing.int4_values(t.data, t.shape) if t.type == "INT4" else t.data


def _int4(op: Op) -> bool:
    return op.inputs[1] is not None and op.inputs[1].type == "INT4"


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
    expected = (out_size(same, opts.strideH, dil_h, in_h, k_h), out_size(same, opts.strideW, dil_w, in_w, k_w))
    if expected != (out_h, out_w):
        ctx.fail(f"output size {out_h}x{out_w} does not match padding (expected {expected})")
    return {
        "in_h": in_h,
        "in_w": in_w,
        "in_c": in_c,
        "out_h": out_h,
        "out_w": out_w,
        "k_h": k_h,
        "k_w": k_w,
        "stride_h": opts.strideH,
        "stride_w": opts.strideW,
        "dil_h": dil_h,
        "dil_w": dil_w,
        "pad_h": padding(opts.strideH, dil_h, in_h, k_h, out_h),
        "pad_w": padding(opts.strideW, dil_w, in_w, k_w, out_w),
        "in_zp": in_t.zero_point,
    }


# Kernel and parameter struct per matmul-like operator and weight encoding.
_MATMUL_KERNELS = {
    ("CONV_2D", "dense"): ("tm_conv2d_s8", "tm_conv_t"),
    ("CONV_2D", "sparse"): ("tm_conv2d_sparse_s8", "tm_conv_sparse_t"),
    ("FULLY_CONNECTED", "dense"): ("tm_fully_connected_s8", "tm_fc_t"),
    ("FULLY_CONNECTED", "sparse"): ("tm_fully_connected_sparse_s8", "tm_fc_sparse_t"),
    ("FULLY_CONNECTED", "int4"): ("tm_fully_connected_s4", "tm_fc_t"),
}


def _conv_operands(ctx: _OpContext, op: Op) -> tuple[Tensor, Tensor, np.ndarray, dict]:
    """CONV_2D and DEPTHWISE_CONV_2D alike: int8 input and output, the constant rank-4 filter
    ([cout][k_h][k_w][in_c] or [1][k_h][k_w][cout], the taps in dims 1 and 2) and its window."""
    ctx.int8_io()
    in_t, out_t = op.inputs[0], op.outputs[0]
    w = _weights(ctx, op.inputs[1], 4)
    return in_t, out_t, w, _window(ctx, in_t, out_t, w.shape[1], w.shape[2], op.options)


def _window_packer(win: dict) -> str:
    """tm_pmm_t.edge: how tm_nn_pconv_driver packs the windows it cannot take straight from the input
    (which needs rows of whole words, k_w * in_c a multiple of 4, no column dilation, and the window
    inside the input): tm_pack_border for windows crossing the border, tm_pack_gathered for all of
    them when rows are not whole words or a window is wider than the input, NULL when every window
    is taken straight."""
    if (win["k_w"] * win["in_c"]) % 4 or win["dil_w"] != 1 or win["k_w"] > win["in_w"]:
        return "tm_pack_gathered"
    span_h, span_w = (win["k_h"] - 1) * win["dil_h"] + 1, win["k_w"]
    last_y = (win["out_h"] - 1) * win["stride_h"] - win["pad_h"] + span_h
    last_x = (win["out_w"] - 1) * win["stride_w"] - win["pad_w"] + span_w
    inside = win["pad_h"] == win["pad_w"] == 0 and last_y <= win["in_h"] and last_x <= win["in_w"]
    return "NULL" if inside else "tm_pack_border"


def _lower_conv(ctx: _OpContext, op: Op) -> Step:
    """Dense weights: packed (tm_pmm_t), and in place when the convolution is 1x1, stride 1, unpadded and
    produces no more channels than it reads. Sparse weights: tm_sparse_matmul_t."""
    in_t, out_t, w, win = _conv_operands(ctx, op)
    cout, k_h, k_w, w_in_c = w.shape
    if w_in_c != win["in_c"]:
        ctx.fail("grouped convolution is not supported")
    w2d = w.reshape(cout, -1)
    k = k_h * k_w * w_in_c
    macs = win["out_h"] * win["out_w"] * cout * k
    if _sparse_wanted(ctx, w2d):
        arrays, rq = _requant(ctx, in_t, op.inputs[1], _bias(ctx, op), out_t, w2d, ctx.activation(op.options))
        enc = sparse_weights(c_name(op), w2d)
        kernel, struct_type = _MATMUL_KERNELS[op.name, enc.kind]
        struct = {"win": win, "mm": {**enc.fields, "k": k, "cout": cout, "rq": rq}}
        return Step(op, kernel, [in_t], out_t, enc.arrays + arrays, struct_type, struct, 2 * k, macs, enc)
    r = _rq_numbers(ctx, in_t, op.inputs[1], _bias(ctx, op), out_t, w2d, ctx.activation(op.options))
    enc, rq_arrays = packed_weights(c_name(op), w2d, r, op.inputs[1].data if _int4(op) else None)
    enc.fields["edge"] = _window_packer(win)
    pointwise = (k_h, k_w, win["stride_h"], win["stride_w"], win["pad_h"], win["pad_w"]) == (1, 1, 1, 1, 0, 0)
    return Step(
        op,
        "tm_conv2d_s8",
        [in_t],
        out_t,
        enc.arrays + rq_arrays,
        "tm_conv_t",
        {"win": win, "mm": enc.fields},
        scratch=packed_scratch(enc.fields) + pconv_scratch(enc.fields["kp"], cout),
        macs=macs,
        encoding=enc,
        inplace=pointwise and cout <= win["in_c"],
    )


def _dw3x3_fits(win: dict, cout: int) -> bool:
    """tm_dwconv3x3_s8's shape: 3x3, stride and dilation 1, SAME (pad 1), multiplier 1, channels by 4."""
    shape = (win["k_h"], win["k_w"], win["stride_h"], win["stride_w"], win["dil_h"], win["dil_w"])
    same = (win["pad_h"], win["pad_w"], win["out_h"], win["out_w"]) == (1, 1, win["in_h"], win["in_w"])
    return shape == (3, 3, 1, 1, 1, 1) and same and cout == win["in_c"] and cout % 4 == 0


def _lower_dwconv(ctx: _OpContext, op: Op) -> Step:
    in_t, out_t, w, win = _conv_operands(ctx, op)
    _, k_h, k_w, cout = w.shape
    if cout % win["in_c"]:
        ctx.fail("output channels are not a multiple of input channels")
    taps_by_channel = w.reshape(k_h * k_w, cout).T
    macs = win["out_h"] * win["out_w"] * cout * k_h * k_w
    if _dw3x3_fits(win, cout):
        # Channels per pass over the image: all of them (one pass is the fastest; fewer per pass would
        # shrink the ring of in_w + 2 output pixels, but the pointwise scratch is then the peak anyway).
        group = cout
        r = _rq_numbers(ctx, in_t, op.inputs[1], _bias(ctx, op), out_t, taps_by_channel, ctx.activation(op.options))
        bound = packing.acc_bound(r.folded, taps_by_channel)
        dbl = packing.doubling(bound)
        stream = CArray(f"{c_name(op)}_pw", packing.packed_dw3x3(taps_by_channel, r.folded, dbl))
        rq_arrays, rq = _packed_requant(c_name(op), r, bound, dbl)
        sparsity = float(np.mean(taps_by_channel == 0))
        struct = {"win": win, "w": stream.name, "dbl": dbl, "group": group, "rq": rq}
        ring = (win["in_w"] + 2) * group
        if not _int4(op):
            enc = WeightEncoding("dense", [stream], {"w": stream.name}, sparsity, taps_by_channel)
            kernel, struct_type, scratch = "tm_dwconv3x3_s8", "tm_dw3x3_t", ring
        else:
            # 4-bit weights stay packed (TFLite's bytes, [tap][channel]), the biases beside them: the kernel
            # lays them out as `stream` after its ring once per call (scratch below the pointwise layers').
            w4 = CArray(f"{c_name(op)}_w4", np.asarray(op.inputs[1].data, np.uint8))
            bias = CArray(f"{c_name(op)}_bias", (r.folded * (2 if dbl else 1)).astype(np.int32))
            enc = WeightEncoding("int4", [w4, bias], {"w4": w4.name, "bias": bias.name}, sparsity, taps_by_channel)
            struct = {"dw": {**struct, "w": "NULL"}, "w4": w4.name, "bias": bias.name}
            kernel, struct_type, scratch = "tm_dwconv3x3_s4", "tm_dw3x3_w4_t", ring + stream.nbytes
        return Step(
            op,
            kernel,
            [in_t],
            out_t,
            enc.arrays + rq_arrays,
            struct_type,
            struct,
            scratch=scratch,
            macs=macs,
            encoding=enc,
            inplace=True,
        )
    # The general kernel (any shape; no architecture here has such a layer with 4-bit weights) reads int8
    # [tap][channel] weights in its inner loop: 4-bit ones are widened to 8 bits here rather than unpacked.
    arrays, rq = _requant(ctx, in_t, op.inputs[1], _bias(ctx, op), out_t, taps_by_channel, ctx.activation(op.options))
    enc = dense_weights(c_name(op), w.reshape(k_h * k_w, cout))  # [tap][channel], not a matmul
    return Step(
        op,
        "tm_dwconv2d_s8",
        [in_t],
        out_t,
        enc.arrays + arrays,
        "tm_dwconv_t",
        {"win": win, "depth_mult": cout // win["in_c"], "w": enc.fields["w"], "rq": rq},
        scratch=k_h * k_w * win["in_c"],
        macs=macs,
        encoding=enc,
    )


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
    if _int4(op):
        if k % 8:
            ctx.fail(f"4-bit weights need k a multiple of 8, got {k}")
        w4 = CArray(f"{c_name(op)}_w4", packing.fc_int4(w))
        enc = WeightEncoding("int4", [w4], {"w": w4.name}, float(np.mean(w == 0)), w)
    else:
        enc = encode_weights(ctx, w)
    rows = in_t.size // k
    kernel, struct_type = _MATMUL_KERNELS[op.name, enc.kind]
    return Step(
        op,
        kernel,
        [in_t],
        out_t,
        enc.arrays + arrays,
        struct_type,
        {"rows": rows, "mm": {**enc.fields, "k": k, "cout": cout, "rq": rq}},
        macs=rows * cout * k,
        encoding=enc,
    )


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
    return Step(
        op,
        "tm_add_s8",
        [a, b],
        out_t,
        [],
        "tm_add_t",
        {
            "size": out_t.size,
            "in1_offset": -a.zero_point,
            "in2_offset": -b.zero_point,
            "left_shift": left_shift,
            "in1_mult": m1,
            "in1_shift": s1,
            "in2_mult": m2,
            "in2_shift": s2,
            "out_mult": mo,
            "out_shift": so,
            "out_zp": out_t.zero_point,
            "act_min": lo,
            "act_max": hi,
        },
    )


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
    return Step(
        op,
        "tm_softmax_s8",
        [in_t],
        out_t,
        [],
        "tm_softmax_t",
        {
            "rows": in_t.size // depth,
            "depth": depth,
            "input_mult": mult,
            "input_left_shift": shift,
            "diff_min": diff_min,
        },
    )


def _lower_quantize(ctx: _OpContext, op: Op) -> Step:
    """QUANTIZE from int8 to int8, a rescale (TFLite's Requantize), elementwise: in place."""
    ctx.int8_io()
    in_t, out_t = op.inputs[0], op.outputs[0]
    mult, shift = quantize_multiplier(float(in_t.scale) / float(out_t.scale))
    if shift > 31:
        ctx.fail("requantisation multiplier is out of range")
    struct = {"size": out_t.size, "in_zp": in_t.zero_point, "out_zp": out_t.zero_point, "mult": mult, "shift": shift}
    return Step(op, "tm_requantize_s8", [in_t], out_t, [], "tm_requantize_t", struct, inplace=True)


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
    "QUANTIZE": _lower_quantize,
}


def lower(path: Path, graph: Graph, sparse_threshold: float | None = None) -> list[Step]:
    live, _ = live_ops(graph)
    steps = []
    for op in live:
        ctx = _OpContext(path, op, sparse_threshold)
        if op.name not in LOWERINGS:
            types = sorted({t.type for t in data_inputs(op) + op.outputs})
            ctx.fail(f"unsupported operator (tensor types {'/'.join(types)})")
        steps.append(LOWERINGS[op.name](ctx, op))
    for role, ts in (("input", graph.inputs), ("output", graph.outputs)):
        if len(ts) != 1 or ts[0].type != "INT8":
            raise UnsupportedModelError(f"{path}: model must have one INT8 {role}, got {[t.type for t in ts]}")
    if not steps:
        raise UnsupportedModelError(f"{path}: model has no operators")
    return steps


class Aliases:
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
