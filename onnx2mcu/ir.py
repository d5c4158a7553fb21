"""The intermediate representation every stage shares.

Kept deliberately plain (dataclasses over numpy) so that the frontend, the
rewrites, the scheduler, the simulator and codegen can all read it without
importing each other.  Shapes are static by the time a Graph exists: the
frontend binds every dynamic dimension.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable

import numpy as np


class DType(Enum):
    """Element types the IR can hold.  BIT is packed 1-bit (binary layers).

    Everything else about a dtype (numpy type, ONNX code, C type, union member,
    kernel suffix) is in its row of `DTYPE_TABLE` below; every other table in
    the pipeline derives from it, so adding a dtype is one row there plus its
    runtime_c kernels.  The member order numbers model.h's <PREFIX>_DTYPE_* codes
    (codegen/generate.py C_API_DTYPES): add new members at the end."""

    FLOAT32 = "float32"
    INT8 = "int8"
    UINT8 = "uint8"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"
    BIT = "bit"
    INT16 = "int16"

    @property
    def info(self) -> "DTypeInfo":
        return DTYPE_TABLE[self]

    @property
    def numpy(self) -> np.dtype:
        """numpy dtype of one stored element (uint32 words for BIT)."""
        return np.dtype(self.info.numpy)

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @property
    def onnx(self) -> int | None:
        """onnx.TensorProto data type code (None: no ONNX counterpart)."""
        return self.info.onnx

    @property
    def ctype(self) -> str:
        return self.info.ctype

    @property
    def member(self) -> str:
        """Member of the arena / weight unions (one per C type) that views this dtype."""
        return self.info.member

    @property
    def suffix(self) -> str:
        """Type suffix of the C names: runtime_c kernels (o2m_add_s64) and harness I/O."""
        return self.info.suffix

    @classmethod
    def from_numpy(cls, dtype: np.dtype | type) -> "DType":
        name = np.dtype(dtype).name
        for member in cls:
            if member.value == name:
                return member
        raise KeyError(name)

    @classmethod
    def from_onnx(cls, code: int) -> "DType | None":
        return next((member for member in cls if member.onnx == code), None)


@dataclass(frozen=True)
class DTypeInfo:
    """One row of the dtype table.  `ops`: the standard ops accept it (registry ANY_SUPPORTED)."""

    numpy: str
    onnx: int | None
    ctype: str
    member: str
    suffix: str
    ops: bool = True


# One suffix scheme in C: f32, s8, u8, s16, s32, s64, b8 (bool), u32 (packed bits).
# ONNX codes are onnx.TensorProto's (FLOAT 1, UINT8 2, INT8 3, INT16 5, INT32 6, INT64 7,
# BOOL 9); tests/test_kernel_registry.py checks them against onnx.
DTYPE_TABLE: dict[DType, DTypeInfo] = {
    DType.FLOAT32: DTypeInfo("float32", 1, "float", "f32", "f32"),
    DType.INT8: DTypeInfo("int8", 3, "int8_t", "s8", "s8"),
    DType.UINT8: DTypeInfo("uint8", 2, "uint8_t", "u8", "u8"),
    DType.INT32: DTypeInfo("int32", 6, "int32_t", "s32", "s32"),
    DType.INT64: DTypeInfo("int64", 7, "int64_t", "s64", "s64"),
    DType.BOOL: DTypeInfo("bool", 9, "uint8_t", "u8", "b8"),
    DType.BIT: DTypeInfo("uint32", None, "uint32_t", "u32", "u32", ops=False),
    DType.INT16: DTypeInfo("int16", 5, "int16_t", "s16", "s16", ops=False),
}


def union_members() -> list[tuple[str, str, int]]:
    """(C type, member, elements per 64-bit word) of the arena / weight unions: one member
    per C type, widest first (then in table order)."""
    seen: dict[str, tuple[str, str, int]] = {}
    for dtype in DType:
        info = dtype.info
        seen.setdefault(info.member, (info.ctype, info.member, 8 // dtype.itemsize))
    return sorted(seen.values(), key=lambda m: m[2])


_QUANT_DTYPES = ("int8", "uint8", "int32")


class GraphError(Exception):
    """A graph breaks the IR's invariants (order, names): a bug in a rewrite, not in the input."""


@dataclass(eq=False)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per `axis`.

    A tensor with `quant` holds integers standing for these real values; a node
    touching such tensors means "the op on the real values, the result
    quantized onto its quantized outputs" (ONNX QuantizeLinear: round half to
    even, saturate).  Per tensor: `scale`/`zero_point` are scalars and `axis`
    is None; per axis: both are 1-D with one value per index of `axis`
    (non-negative).  The integer type is the zero point's (int8, uint8, int32).
    Equality and hashing compare the values (`key()`), never `origin`: the
    frontend's record of the QuantizeLinear/DequantizeLinear nodes it folded
    (frontend/qdq.py), which graph_opt/float_islands.py uses to restore them.
    `value_offset` (also outside the key: the real values do not depend on it) says the stored
    integers are the model's minus this much: 128 for the uint8 values frontend/uint8.py holds
    as int8 (zero point too), which the arithmetic that reads raw values (onnxruntime's
    QLinearAdd) needs.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None
    origin: Any = field(default=None, repr=False)
    value_offset: int = 0

    def __post_init__(self) -> None:
        scale = np.asarray(self.scale, dtype=np.float32)
        zero_point = np.asarray(self.zero_point)
        if zero_point.dtype.name not in _QUANT_DTYPES:
            raise ValueError(f"zero point of dtype {zero_point.dtype.name}; expected one of {_QUANT_DTYPES}")
        if scale.ndim > 1 or zero_point.ndim > 1:
            raise ValueError("scale and zero point must be scalars (per tensor) or 1-D (per axis)")
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise ValueError("scale must be finite and positive")
        if self.axis is None:
            if scale.size != 1 or zero_point.size != 1:
                raise ValueError(f"{scale.size} scales without an axis")
            scale, zero_point = scale.reshape(()), zero_point.reshape(())
        else:
            if self.axis < 0:
                raise ValueError(f"axis {self.axis} must be normalized (non-negative)")
            scale = scale.reshape(-1)
            if zero_point.size == 1 and scale.size > 1:
                zero_point = np.full(scale.shape, zero_point.reshape(()), dtype=zero_point.dtype)
            zero_point = zero_point.reshape(-1)
            if zero_point.size != scale.size:
                raise ValueError(f"{scale.size} scales but {zero_point.size} zero points")
        self.scale, self.zero_point = scale, zero_point

    @property
    def dtype(self) -> DType:
        return DType.from_numpy(self.zero_point.dtype)

    @property
    def per_axis(self) -> bool:
        return self.axis is not None

    def key(self) -> tuple:
        """The values as a hashable tuple (scale bits, zero points, integer type, axis)."""
        return (self.scale.tobytes(), self.zero_point.tobytes(), self.zero_point.dtype.name, self.axis)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QuantParams) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def without_origin(self) -> "QuantParams":
        return QuantParams(self.scale, self.zero_point, self.axis, value_offset=self.value_offset)

    def _broadcast(self, param: np.ndarray, rank: int) -> np.ndarray:
        if self.axis is None:
            return param
        if self.axis >= rank:
            raise ValueError(f"axis {self.axis} out of range for rank {rank}")
        shape = [1] * rank
        shape[self.axis] = param.size
        return param.reshape(shape)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """ONNX QuantizeLinear in float32: saturate(round_half_even(x / scale) + zero_point)."""
        x = np.asarray(x, dtype=np.float32)
        info = np.iinfo(self.zero_point.dtype)
        with np.errstate(all="ignore"):
            y = np.rint(x / self._broadcast(self.scale, x.ndim))
        y = y + self._broadcast(self.zero_point, x.ndim).astype(np.float32)
        return np.clip(y, info.min, info.max).astype(self.zero_point.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """ONNX DequantizeLinear: (q - zero_point) * scale, in float32."""
        q = np.asarray(q)
        centred = q.astype(np.int64) - self._broadcast(self.zero_point, q.ndim).astype(np.int64)
        return (centred.astype(np.float32) * self._broadcast(self.scale, q.ndim)).astype(np.float32)


@dataclass
class Tensor:
    """A named value: an activation (data is None) or a constant held in flash."""

    name: str
    shape: tuple[int, ...]
    dtype: DType = DType.FLOAT32
    data: np.ndarray | None = None
    quant: QuantParams | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        if self.dtype is DType.BIT:
            # packed along the last axis into 32-bit words
            inner = self.shape[-1] if self.shape else 1
            outer = self.numel // max(inner, 1)
            return outer * ((inner + 31) // 32) * 4
        return self.numel * self.dtype.itemsize


@dataclass
class Node:
    """One operator application.  An empty string in `inputs` is an omitted optional input."""

    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    domain: str = ""

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)


@dataclass
class Graph:
    """Nodes in a valid topological order plus every tensor they touch."""

    name: str
    nodes: list[Node]
    tensors: dict[str, Tensor]
    inputs: list[str]
    outputs: list[str]
    notes: list[str] = field(default_factory=list)  # what the frontend assumed (bound dims, ...)
    source: str = ""  # file the graph came from, for error messages
    # node name -> scratch bytes of the C kernel chosen for it (codegen.kernels.select_kernels,
    # run by the face before scheduling); nodes absent here use their op's formula
    scratch: dict[str, int] = field(default_factory=dict)
    # nodes whose kernel must take its scratch-free form: its scratch would raise the arena's peak
    # (onnx2mcu/pipeline.py fills it after scheduling; kernels with two forms read it)
    scratch_free: set[str] = field(default_factory=set)
    # integer requantization of the int8 nodes: "fixed" (TFLite's) or "float" (onnxruntime's);
    # set by the pipeline driver (Options.requant) and read by the ops' prepare
    requant: str = "fixed"
    # node name -> (what they came from, Params): ops.registry.prepared's cache
    prepared: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # ----- queries -------------------------------------------------------
    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs if out}

    def consumers(self) -> dict[str, list[Node]]:
        result: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    result.setdefault(name, []).append(node)
        return result

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def input_tensors(self, node: Node) -> list[Tensor | None]:
        return [self.tensors[n] if n else None for n in node.inputs]

    def constants(self) -> Iterable[Tensor]:
        return (t for t in self.tensors.values() if t.is_const)

    @property
    def weights_bytes(self) -> int:
        """Bytes of constants the nodes actually use (what goes to flash)."""
        used = {n for node in self.nodes for n in node.inputs if n}
        return sum(t.nbytes for t in self.constants() if t.name in used)

    def validate(self) -> None:
        """Raise GraphError unless nodes are topologically ordered, uniquely named, and every
        name they use exists (a real exception: `python -O` strips asserts)."""
        available = set(self.inputs) | {t.name for t in self.constants()}
        for name in available:
            if name not in self.tensors:
                raise GraphError(f"graph input {name} has no tensor")
        seen_nodes: set[str] = set()
        for node in self.nodes:
            if node.name in seen_nodes:
                raise GraphError(f"duplicate node name {node.name}")
            seen_nodes.add(node.name)
            for name in node.inputs:
                if name and name not in available:
                    raise GraphError(f"{node.name}: input {name} not yet produced")
            for name in node.outputs:
                if not name:
                    continue
                if name not in self.tensors:
                    raise GraphError(f"{node.name}: output {name} has no tensor")
                if name in available:
                    raise GraphError(f"{node.name}: output {name} is already produced")
                available.add(name)
        for name in self.outputs:
            if name not in available:
                raise GraphError(f"graph output {name} is never produced")
