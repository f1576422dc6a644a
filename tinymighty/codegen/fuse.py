"""Fusion: a CONV_2D whose output feeds only a FULLY_CONNECTED layer becomes one kernel call.

The conv output, TinyConv's largest tensor, is never stored.
"""

from __future__ import annotations

import numpy as np

from . import packing
from .flatbuffer import Graph
from .lower import Aliases, CArray, CStructArray, Step, c_name, packed_scratch, pconv_scratch

_CONV_STRUCTS = {"dense": "tm_pmm_t", "int4": "tm_pmm_t", "sparse": "tm_sparse_matmul_t"}
_FC_STRUCTS = {"dense": "tm_matmul_t", "int4": "tm_matmul_t", "sparse": "tm_sparse_matmul_t"}
# The fused entry point's suffix: conv encoding, then FC encoding (a 4-bit conv is packed like a dense one).
_CONV_CODE = {"dense": "d", "int4": "d", "sparse": "s"}
_FC_CODE = {"dense": "d", "int4": "4", "sparse": "s"}
FUSED_KERNELS = {"dd", "ds", "d4", "sd", "ss"}  # tm_conv2d_fc_s8_* (and _sc, see _column_fusable)


def _fusable_fc(conv: Step, steps: list[Step], aliases: Aliases, graph: Graph) -> Step | None:
    """The FULLY_CONNECTED step that is the only consumer of conv's output (through
    reshapes), with that output as its single input row; None if there is none."""
    group = aliases.root(conv.write.index)
    if any(aliases.root(t.index) == group for t in graph.outputs + graph.inputs):
        return None
    users = [s for s in steps if s.kernel is not None and any(aliases.root(t.index) == group for t in s.reads)]
    if len(users) != 1 or users[0].op.name != "FULLY_CONNECTED":
        return None
    fc = users[0]
    if fc.struct.get("rows") != 1 or len(fc.reads) != 1 or fc.reads[0].size != conv.write.size:
        return None
    return fc


def _fused_conv_fc(conv: Step, fc: Step) -> Step:
    conv_kind, fc_kind = conv.encoding.kind, fc.encoding.kind
    mm_conv, mm_fc = f"{c_name(conv.op)}_mm", f"{c_name(fc.op)}_mm"
    fc_cout, cout, k = fc.struct["mm"]["cout"], conv.struct["mm"]["cout"], conv.struct["mm"]["k"]
    state = (8 if fc_kind == "sparse" else 4) * fc_cout  # accumulators (+ cursors)
    if conv_kind != "sparse":  # tm_nn_pconv_driver: [unpacked 4-bit weights,] packed pixels, accumulators
        kp = conv.struct["mm"]["kp"]  # the 3-pixel chunk of conv outputs goes into the packed pixels if it fits
        own = packed_scratch(conv.struct["mm"]) + pconv_scratch(kp, cout)
        own += 0 if 3 * cout <= 12 * kp else -(-3 * cout // 4) * 4
    else:  # tm_nn_conv_driver: two columns and a 2-pixel chunk
        own = 2 * k + 2 * cout
    return Step(
        conv.op,
        f"tm_conv2d_fc_s8_{_CONV_CODE[conv_kind]}{_FC_CODE[fc_kind]}",
        conv.reads,
        fc.write,
        conv.arrays + fc.arrays,
        "tm_conv_fc_t",
        {"win": conv.struct["win"], "conv": f"&{mm_conv}", "fc": f"&{mm_fc}"},
        scratch=state + own,
        macs=conv.macs + fc.macs,
        substructs=[
            (_CONV_STRUCTS[conv_kind], mm_conv, conv.struct["mm"]),
            (_FC_STRUCTS[fc_kind], mm_fc, fc.struct["mm"]),
        ],
        fused=[conv, fc],
    )


def _sparse_taps(prefix: str, w2d: np.ndarray, win: dict) -> tuple[list[CArray], dict]:
    """tm_sparse_taps_t: a sparse conv's nonzeros per output channel (an even number, at least
    2: zero weights at column 0 pad them) with each tap's byte offset in the input tensor
    (from the window's top-left pixel) and in a gathered [k_h][k_w][in_c] column
    (windows crossing the border)."""
    cols, vals, start = [], [], [0]
    for c in range(w2d.shape[0]):
        nz = np.flatnonzero(w2d[c])
        extra = 2 if len(nz) == 0 else len(nz) % 2  # a zero weight at column 0: even, and never empty
        cols.append(np.concatenate([nz, [0] * extra]).astype(np.int64))
        vals.append(np.concatenate([w2d[c, nz], [0] * extra]).astype(np.int8))
        start.append(start[-1] + len(cols[-1]))
    cols, vals = np.concatenate(cols), np.concatenate(vals)
    in_c, k_w = win["in_c"], win["k_w"]
    ky, rest = np.divmod(cols, k_w * in_c)
    kx, ic = np.divmod(rest, in_c)
    in_off = (ky * win["dil_h"] * win["in_w"] + kx * win["dil_w"]) * in_c + ic
    pad = (lambda a: a) if len(cols) else (lambda a: np.zeros(1, a.dtype))  # C has no empty arrays
    arrays = [
        CArray(f"{prefix}_start", np.asarray(start, np.int32)),
        CArray(f"{prefix}_val", pad(vals)),
        CArray(f"{prefix}_in_off", pad(in_off.astype(np.int32))),
        CArray(f"{prefix}_col_off", pad(cols.astype(np.int32))),
    ]
    return arrays, {
        "row_start": arrays[0].name,
        "in_off": arrays[2].name,
        "col_off": arrays[3].name,
        "val": arrays[1].name,
    }


def _sparse_columns(prefix: str, w2d: np.ndarray) -> tuple[list[CArray], dict]:
    """tm_sparse_cols_t: an FC's live input columns (any nonzero weight), ascending,
    as one uint16 stream: per column its index, its count of nonzeros, then per
    nonzero its output row | weight << 8."""
    cols, rows = np.nonzero(w2d.T)  # column-major: by column, rows ascending within
    live, cnt = np.unique(cols, return_counts=True)
    entries = rows.astype(np.uint16) | (w2d[rows, cols].astype(np.int8).view(np.uint8).astype(np.uint16) << 8)
    prog, at = [], 0
    for j, n in zip(live, cnt, strict=True):
        prog += [int(j), int(n), *entries[at : at + n].tolist()]
        at += n
    stream = CArray(f"{prefix}_fprog", np.asarray(prog + [0xFFFF], np.uint16))  # 0xffff ends it
    return [stream], {"prog": stream.name, "n_cols": len(live)}


def _column_fusable(conv: Step, fc: Step) -> bool:
    """tm_conv2d_fc_s8_sc applies: both sparse, FC rows and columns within its index types."""
    return (
        conv.encoding.kind == fc.encoding.kind == "sparse"
        and fc.struct["mm"]["cout"] <= 256
        and fc.struct["mm"]["k"] <= 1 << 16
    )


def _fast_taps(prefix: str, arrays: list[CArray], w2d: np.ndarray, rq: dict, taps: dict) -> tuple[list, str]:
    """The sparse taps' fast requantisation (see packing), when exact for the doubled sum: per channel a
    tm_sc_chan_t (its bias, its taps' weights and input offsets, multiplier, rounding constant and right
    shift), once with the offsets in the input and once in a gathered column (tm_sparse_taps_t.chan);
    else NULL."""
    by_name = {a.name: a for a in arrays}
    bias, shift = by_name[rq["bias"]].values.astype(np.int64), by_name[rq["shift"]].values.astype(np.int64)
    mult = by_name[rq["mult"]].values.astype(np.int64)
    bound = packing.acc_bound(bias, w2d)
    rnd = packing.fast_rounding(shift, rq["out_zp"], bound, packing.doubling(bound))
    if rnd is None:
        return arrays, "NULL"
    count = (w2d != 0).sum(axis=1)
    count = np.where(count == 0, 2, count + count % 2)  # as _sparse_taps pads them
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    rows = [
        {
            "bias": int(bias[c]),
            "val": f"{taps['val']} + {int(first[c])}",
            "off": f"{taps[off]} + {int(first[c])}",
            "val_end": f"{taps['val']} + {int(first[c] + count[c])}",
            "mult": int(mult[c]),
            "rnd": int(rnd[c]),
            "shift": int(-shift[c]),
        }
        for off in ("in_off", "col_off")  # interior windows, then gathered ones
        for c in range(w2d.shape[0])
    ]
    return arrays + [CStructArray(f"{prefix}_chan", "tm_sc_chan_t", rows)], f"{prefix}_chan"


def _fused_conv_fc_columns(conv: Step, fc: Step) -> Step:
    """Sparse conv + sparse FC as tm_conv2d_fc_s8_sc: conv taps with precomputed
    input offsets, FC weights by live column, so that only the conv outputs some
    nonzero FC weight reads are computed. Replaces both layers' CSR arrays."""
    mm_conv, mm_fc = f"{c_name(conv.op)}_mm", f"{c_name(fc.op)}_mm"
    cmm, fmm = conv.struct["mm"], fc.struct["mm"]
    taps, taps_fields = _sparse_taps(c_name(conv.op), conv.encoding.matrix, conv.struct["win"])
    fcols, fcols_fields = _sparse_columns(c_name(fc.op), fc.encoding.matrix)
    rq_arrays = [a for s in (conv, fc) for a in s.arrays if all(a is not e for e in s.encoding.arrays)]
    rq_arrays, taps_fields["chan"] = _fast_taps(
        c_name(conv.op), rq_arrays, conv.encoding.matrix, cmm["rq"], taps_fields
    )
    return Step(
        conv.op,
        "tm_conv2d_fc_s8_sc",
        conv.reads,
        fc.write,
        taps + fcols + rq_arrays,
        "tm_conv_fc_t",
        {"win": conv.struct["win"], "conv": f"&{mm_conv}", "fc": f"&{mm_fc}"},
        scratch=4 * fmm["cout"] + -(-cmm["k"] // 4) * 4,
        macs=conv.macs + fc.macs,
        substructs=[
            ("tm_sparse_taps_t", mm_conv, {**taps_fields, "k": cmm["k"], "cout": cmm["cout"], "rq": cmm["rq"]}),
            ("tm_sparse_cols_t", mm_fc, {**fcols_fields, "k": fmm["k"], "cout": fmm["cout"], "rq": fmm["rq"]}),
        ],
        fused=[conv, fc],
    )


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
    aliases = Aliases(steps)
    out = list(steps)
    for conv in steps:
        if conv.op.name != "CONV_2D" or conv.kernel is None:
            continue
        fc = _fusable_fc(conv, out, aliases, graph)
        if fc is None or _CONV_CODE[conv.encoding.kind] + _FC_CODE[fc.encoding.kind] not in FUSED_KERNELS:
            continue
        group = aliases.root(conv.write.index)
        dropped = {id(fc)} | {id(s) for s in out if s.kernel is None and aliases.root(s.reads[0].index) == group}
        fused = (
            _fused_conv_fc_columns(conv, fc)
            if sparse_columns and _column_fusable(conv, fc)
            else _fused_conv_fc(conv, fc)
        )
        out = [fused if s is conv else s for s in out if id(s) not in dropped]
    return out
