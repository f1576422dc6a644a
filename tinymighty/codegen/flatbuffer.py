"""Reading a .tflite flatbuffer: Graph, Op and Tensor, and the ops the model's outputs depend on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class UnsupportedModelError(ValueError):
    """The model uses an operator, tensor type or layout the generator cannot compile."""


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
