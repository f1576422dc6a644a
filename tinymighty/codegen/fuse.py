"""Fusion: a CONV_2D whose output feeds only a FULLY_CONNECTED layer becomes one kernel call.

The conv output, TinyConv's largest tensor, is never stored.
"""

from __future__ import annotations

import numpy as np

from .flatbuffer import Graph
from .lower import Aliases, CArray, Step, c_name

_MATMUL_STRUCTS = {"dense": "tm_matmul_t", "sparse": "tm_sparse_matmul_t"}


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
    return Step(
        conv.op,
        f"tm_conv2d_fc_s8_{conv_kind[0]}{fc_kind[0]}",
        conv.reads,
        fc.write,
        conv.arrays + fc.arrays,
        "tm_conv_fc_t",
        {"win": conv.struct["win"], "conv": f"&{mm_conv}", "fc": f"&{mm_fc}"},
        scratch=state + 2 * k + 2 * cout,
        macs=conv.macs + fc.macs,
        substructs=[
            (_MATMUL_STRUCTS[conv_kind], mm_conv, conv.struct["mm"]),
            (_MATMUL_STRUCTS[fc_kind], mm_fc, fc.struct["mm"]),
        ],
        fused=[conv, fc],
    )


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
    arrays = [
        CArray(f"{prefix}_start", start),
        CArray(f"{prefix}_val", pad(w2d[rows, cols].astype(np.int8))),
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
    each with its nonzeros' output rows and weights."""
    cols, rows = np.nonzero(w2d.T)  # column-major: by column, rows ascending within
    live, cnt = np.unique(cols, return_counts=True)
    pad = (lambda a: a) if len(cols) else (lambda a: np.zeros(1, a.dtype))
    arrays = [
        CArray(f"{prefix}_fcol", pad(live.astype(np.uint16))),
        CArray(f"{prefix}_fcnt", pad(cnt.astype(np.uint8))),
        CArray(f"{prefix}_frow", pad(rows.astype(np.uint8))),
        CArray(f"{prefix}_fval", pad(w2d[rows, cols].astype(np.int8))),
    ]
    return arrays, {
        "col": arrays[0].name,
        "cnt": arrays[1].name,
        "row": arrays[2].name,
        "val": arrays[3].name,
        "n_cols": len(live),
    }


def _column_fusable(conv: Step, fc: Step) -> bool:
    """tm_conv2d_fc_s8_sc applies: both sparse, FC rows and columns within its index types."""
    return (
        conv.encoding.kind == fc.encoding.kind == "sparse"
        and fc.struct["mm"]["cout"] <= 255
        and fc.struct["mm"]["k"] <= 1 << 16
    )


def _fused_conv_fc_columns(conv: Step, fc: Step) -> Step:
    """Sparse conv + sparse FC as tm_conv2d_fc_s8_sc: conv taps with precomputed
    input offsets, FC weights by live column, so that only the conv outputs some
    nonzero FC weight reads are computed. Replaces both layers' CSR arrays."""
    mm_conv, mm_fc = f"{c_name(conv.op)}_mm", f"{c_name(fc.op)}_mm"
    cmm, fmm = conv.struct["mm"], fc.struct["mm"]
    taps, taps_fields = _sparse_taps(c_name(conv.op), conv.encoding.matrix, conv.struct["win"])
    fcols, fcols_fields = _sparse_columns(c_name(fc.op), fc.encoding.matrix)
    rq_arrays = [a for s in (conv, fc) for a in s.arrays if all(a is not e for e in s.encoding.arrays)]
    return Step(
        conv.op,
        "tm_conv2d_fc_s8_sc",
        conv.reads,
        fc.write,
        taps + fcols + rq_arrays,
        "tm_conv_fc_t",
        {"win": conv.struct["win"], "conv": f"&{mm_conv}", "fc": f"&{mm_fc}"},
        scratch=4 * fmm["cout"] + cmm["k"],
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
        if fc is None:
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
