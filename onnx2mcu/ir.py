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
    runtime_c kernels."""

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


@dataclass
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per `axis`."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None


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
        """Raise AssertionError if the node list is not topologically ordered or names dangle."""
        available = set(self.inputs) | {t.name for t in self.constants()}
        seen_nodes: set[str] = set()
        for node in self.nodes:
            assert node.name not in seen_nodes, f"duplicate node name {node.name}"
            seen_nodes.add(node.name)
            for name in node.inputs:
                assert not name or name in available, f"{node.name}: input {name} not yet produced"
            for name in node.outputs:
                if name:
                    assert name in self.tensors, f"{node.name}: output {name} has no tensor"
                    available.add(name)
        for name in self.outputs:
            assert name in available, f"graph output {name} is never produced"
