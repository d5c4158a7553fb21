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
    """Element types the IR can hold.  BIT is packed 1-bit (binary layers)."""

    FLOAT32 = "float32"
    INT8 = "int8"
    UINT8 = "uint8"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"
    BIT = "bit"

    @property
    def numpy(self) -> np.dtype:
        if self is DType.BIT:
            return np.dtype(np.uint32)  # packed words
        return np.dtype(self.value)

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @classmethod
    def from_numpy(cls, dtype: np.dtype | type) -> "DType":
        name = np.dtype(dtype).name
        for member in cls:
            if member.value == name:
                return member
        raise KeyError(name)


class GraphError(Exception):
    """A graph breaks the IR's invariants (order, names): a bug in a rewrite, not in the input."""


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
