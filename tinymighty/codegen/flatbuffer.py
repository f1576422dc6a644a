"""Reading a .tflite flatbuffer: Graph, Op and Tensor, and the ops the model's outputs depend on."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, TinyMightyError


class UnsupportedModelError(TinyMightyError, ValueError):
    """The model uses an operator, tensor type or layout the generator cannot compile."""


# What a file that is not a .tflite usually is, by its first bytes.
_MAGIC = {b"\x89HDF": "an HDF5 file (a Keras .h5 model?)", b"PK\x03\x04": "a zip file (a Keras .keras model?)"}
_PARSE_ERRORS = (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError, AttributeError, OverflowError)


def verify_tflite(path: Path, data: bytes) -> None:
    """Size-checked structural check of a .tflite flatbuffer before anything reads it: the file identifier,
    the root table inside the file, and (after parsing, in read_graph) every index within its vector.
    Raises InputError naming the file and what to do."""
    redo = "regenerate it (delete it and rerun the workflow, which converts the model again)"
    if not data:
        raise InputError(f"{path}: the .tflite file is empty (0 bytes), e.g. from an interrupted conversion; {redo}")
    if len(data) < 8 or data[4:8] != b"TFL3":
        what = next((v for k, v in _MAGIC.items() if data.startswith(k)), f"{len(data)} bytes starting {data[:8]!r}")
        raise InputError(
            f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier at byte 4; it is {what}); the code generator "
            "takes the int8 .tflite the workflow's convert step writes, so convert the model first"
        )
    root = struct.unpack_from("<I", data)[0]
    if not 8 <= root <= len(data) - 4:
        raise InputError(
            f"{path}: truncated or corrupt .tflite (root table at {root}, file has {len(data)} bytes); {redo}"
        )


def _check_indices(path, model) -> None:
    """Every tensor, buffer and operator-code index the graph uses points inside its vector."""
    sg = model.subgraphs[0]
    n_tensors, n_buffers, n_codes = len(sg.tensors or []), len(model.buffers or []), len(model.operatorCodes or [])
    problems = [
        f"tensor {i} uses buffer {t.buffer} of {n_buffers}"
        for i, t in enumerate(sg.tensors or [])
        if not 0 <= t.buffer < max(n_buffers, 1)
    ]
    for i, o in enumerate(sg.operators or []):
        if not 0 <= o.opcodeIndex < n_codes:
            problems.append(f"operator {i} uses operator code {o.opcodeIndex} of {n_codes}")
        bad = [
            j
            for j in [*(o.inputs if o.inputs is not None else []), *(o.outputs if o.outputs is not None else [])]
            if not -1 <= j < n_tensors
        ]
        if bad:
            problems.append(f"operator {i} uses tensors {bad} of {n_tensors}")
    io = [
        j
        for j in [*(sg.inputs if sg.inputs is not None else []), *(sg.outputs if sg.outputs is not None else [])]
        if not 0 <= j < n_tensors
    ]
    if io:
        problems.append(f"the model's inputs/outputs name tensors {io} of {n_tensors}")
    if problems:
        raise InputError(f"{path}: corrupt .tflite: {'; '.join(problems[:3])}; regenerate it")


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema_fb
    from tensorflow.lite.tools import flatbuffer_utils

    return schema_fb, flatbuffer_utils


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


_NP_TYPES = {
    "INT8": np.int8,
    "INT32": np.int32,
    "UINT8": np.uint8,
    "INT16": np.int16,
    "INT64": np.int64,
    "FLOAT32": np.float32,
}


@dataclass
class Tensor:
    index: int
    name: str
    type: str
    shape: tuple[int, ...]
    scales: np.ndarray  # float32, one per channel (or one)
    zero_points: np.ndarray  # int64
    data: np.ndarray | None  # constant contents, None for activations

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
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read the model ({err.strerror or err}); check the path") from err
    verify_tflite(path, data)
    schema_fb, flatbuffer_utils = _schema()
    try:
        model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    except _PARSE_ERRORS as err:
        raise InputError(
            f"{path}: truncated or corrupt .tflite ({len(data)} bytes; reading it failed: {type(err).__name__}: "
            f"{err}); regenerate it (delete it and rerun the workflow)"
        ) from err
    if not model.subgraphs:
        raise InputError(f"{path}: the .tflite has no subgraph; regenerate it")
    _check_indices(path, model)
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
            try:
                data = np.frombuffer(content, _NP_TYPES[type_name]).reshape(shape)
            except ValueError as err:
                raise InputError(
                    f"{path}: corrupt .tflite: tensor {i} holds {len(content)} bytes, which is not {type_name} of "
                    f"shape {shape}; regenerate it"
                ) from err
        elif content is not None:  # e.g. packed INT4: raw bytes, rejected by the op's type check
            data = np.frombuffer(content, np.uint8)
        name = t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name)
        tensors.append(Tensor(i, name, type_name, shape, scales, zps, data))

    ops = []
    for i, o in enumerate(sg.operators or []):
        code = model.operatorCodes[o.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = op_names.get(builtin, str(builtin))
        if name == "CUSTOM":
            custom = code.customCode.decode(errors="replace") if isinstance(code.customCode, bytes) else code.customCode
            name = f"CUSTOM({custom})"
        inputs = [tensors[j] if j >= 0 else None for j in o.inputs]
        outputs = [tensors[j] for j in o.outputs]
        ops.append(Op(i, name, inputs, outputs, o.builtinOptions))
    return Graph(ops, [tensors[j] for j in sg.inputs], [tensors[j] for j in sg.outputs])


def data_inputs(op: Op) -> list[Tensor]:
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
            needed.update(t.index for t in data_inputs(op) if t.data is None)
    return ([op for op in graph.ops if op.index in live], [op for op in graph.ops if op.index not in live])
