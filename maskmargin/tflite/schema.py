"""A minimal reader of the TFLite flatbuffer: the parts of the schema the MediaPipe models use.

A flatbuffer table starts with an int32 offset back to its vtable; the vtable lists, per field id, the
field's offset inside the table (0: absent, use the default). Offsets to tables, vectors and strings are
uint32, relative to where they are stored. Only reading is needed, so this is a few struct unpacks.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

# TensorType -> numpy dtype
TENSOR_TYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f2"),
    2: np.dtype("<i4"),
    3: np.dtype("u1"),
    4: np.dtype("<i8"),
    6: np.dtype("?"),
    7: np.dtype("<i2"),
    9: np.dtype("i1"),
}

# The builtin operators this project executes (schema.fbs numbering).
BUILTIN_NAMES: dict[int, str] = {
    0: "ADD",
    1: "AVERAGE_POOL_2D",
    2: "CONCATENATION",
    3: "CONV_2D",
    4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE",
    6: "DEQUANTIZE",
    9: "FULLY_CONNECTED",
    14: "LOGISTIC",
    17: "MAX_POOL_2D",
    18: "MUL",
    19: "RELU",
    21: "RELU6",
    22: "RESHAPE",
    23: "RESIZE_BILINEAR",
    25: "SOFTMAX",
    28: "TANH",
    32: "CUSTOM",
    34: "PAD",
    39: "TRANSPOSE",
    40: "MEAN",
    41: "SUB",
    45: "STRIDED_SLICE",
    54: "PRELU",
    117: "HARD_SWISH",
    124: "DENSIFY",
}


class Table:
    """One flatbuffer table inside `buf` at `pos`."""

    __slots__ = ("buf", "pos", "_vt", "_vt_len")

    def __init__(self, buf: bytes, pos: int):
        self.buf = buf
        self.pos = pos
        self._vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self._vt_len = struct.unpack_from("<H", buf, self._vt)[0]

    def _offset(self, field_id: int) -> int:
        slot = 4 + 2 * field_id
        if slot >= self._vt_len:
            return 0
        return struct.unpack_from("<H", self.buf, self._vt + slot)[0]

    def scalar(self, field_id: int, fmt: str, default: float | int = 0) -> int | float:
        off = self._offset(field_id)
        return struct.unpack_from("<" + fmt, self.buf, self.pos + off)[0] if off else default

    def _indirect(self, field_id: int) -> int | None:
        off = self._offset(field_id)
        if not off:
            return None
        at = self.pos + off
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, field_id: int) -> Table | None:
        at = self._indirect(field_id)
        return None if at is None else Table(self.buf, at)

    def vector(self, field_id: int, dtype: str) -> np.ndarray:
        at = self._indirect(field_id)
        if at is None:
            return np.zeros(0, dtype=dtype)
        n = struct.unpack_from("<I", self.buf, at)[0]
        return np.frombuffer(self.buf, dtype=dtype, count=n, offset=at + 4)

    def string(self, field_id: int) -> str:
        return self.vector(field_id, "u1").tobytes().decode("utf-8")

    def tables(self, field_id: int) -> list[Table]:
        at = self._indirect(field_id)
        if at is None:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        out = []
        for i in range(n):
            p = at + 4 + 4 * i
            out.append(Table(self.buf, p + struct.unpack_from("<I", self.buf, p)[0]))
        return out


@dataclass
class Sparsity:
    """CSR-style sparsity of a constant tensor (the full-range face detector's 1x1 convolutions)."""

    traversal_order: list[int]
    formats: list[int]  # per traversal dimension: 0 dense, 1 sparse CSR
    dense_sizes: list[int]
    segments: list[np.ndarray | None]
    indices: list[np.ndarray | None]


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None  # constant contents (flat), None for activations
    sparsity: Sparsity | None = None


@dataclass
class Operator:
    op: str  # builtin name, or the custom op's name
    inputs: list[int]
    outputs: list[int]
    options: Table | None  # builtin options table (its fields are read by the interpreter)
    custom_options: bytes = b""
    version: int = 1


@dataclass
class Model:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]
    data: bytes = b""  # the file itself (LiteRT runs it as it is)


_SPARSE_VECTOR_TYPES = {1: "<i4", 2: "<u2", 3: "u1"}


def _sparse_vector(table: Table, type_field: int) -> np.ndarray | None:
    kind = int(table.scalar(type_field, "B"))
    if kind == 0:
        return None
    values = table.table(type_field + 1)
    assert values is not None
    return values.vector(0, _SPARSE_VECTOR_TYPES[kind]).astype(np.int64)


def _sparsity(table: Table | None) -> Sparsity | None:
    if table is None:
        return None
    dims = table.tables(2)
    return Sparsity(
        traversal_order=[int(v) for v in table.vector(0, "<i4")],
        formats=[int(d.scalar(0, "b")) for d in dims],
        dense_sizes=[int(d.scalar(1, "i")) for d in dims],
        segments=[_sparse_vector(d, 2) for d in dims],
        indices=[_sparse_vector(d, 4) for d in dims],
    )


def read_model(data: bytes) -> Model:
    """Parse a .tflite file's bytes (subgraph 0 only: the MediaPipe models have one)."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
    root = Table(data, struct.unpack_from("<I", data, 0)[0])
    codes = []
    for code in root.tables(1):
        builtin = max(int(code.scalar(0, "b")), int(code.scalar(3, "i")))
        name = code.string(1) if builtin == 32 else BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")
        codes.append((name, int(code.scalar(2, "i", 1))))
    buffers = root.tables(4)
    graph = root.tables(2)[0]
    tensors = []
    for i, t in enumerate(graph.tables(0)):
        dtype = TENSOR_TYPES.get(int(t.scalar(1, "b")), np.dtype("u1"))
        buffer_index = int(t.scalar(2, "I"))
        raw = buffers[buffer_index].vector(0, "u1") if buffer_index < len(buffers) else np.zeros(0, "u1")
        const = raw.view(dtype) if raw.size else None
        tensors.append(
            Tensor(i, t.string(3), tuple(int(v) for v in t.vector(0, "<i4")), dtype, const, _sparsity(t.table(6)))
        )
    operators = []
    for op in graph.tables(3):
        name, version = codes[int(op.scalar(0, "I"))]
        operators.append(
            Operator(
                op=name,
                inputs=[int(v) for v in op.vector(1, "<i4")],
                outputs=[int(v) for v in op.vector(2, "<i4")],
                options=op.table(4),
                custom_options=op.vector(5, "u1").tobytes(),
                version=version,
            )
        )
    return Model(
        tensors=tensors,
        operators=operators,
        inputs=[int(v) for v in graph.vector(1, "<i4")],
        outputs=[int(v) for v in graph.vector(2, "<i4")],
        data=data,
    )
