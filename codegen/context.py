"""What an op's C emitter sees: typed pointers, shapes and a place for constant tables.

Each OpDef's `emit_c(node, ctx)` returns the C statements for one step; it
asks the context for the C expression of a tensor (`ctx.ptr`) and declares
any parameter struct or small table it needs (`ctx.declare`).  Activations
are pointers into the one static arena at their planned offsets; constants
are pointers into the flash weight blob.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from onnx2mcu.ir import DType, Graph, Node, Tensor

C_TYPES = {
    DType.FLOAT32: "float",
    DType.INT8: "int8_t",
    DType.UINT8: "uint8_t",
    DType.INT32: "int32_t",
    DType.INT64: "int64_t",
    DType.BOOL: "uint8_t",
    DType.BIT: "uint32_t",
}
UNION_MEMBER = {  # member of the arena / weight unions to index for each dtype
    DType.FLOAT32: "f32",
    DType.INT8: "i8",
    DType.UINT8: "u8",
    DType.INT32: "i32",
    DType.INT64: "i64",
    DType.BOOL: "u8",
    DType.BIT: "u32",
}


def c_identifier(name: str, prefix: str = "") -> str:
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    if not ident or ident[0].isdigit():
        ident = "_" + ident
    return prefix + ident


def c_float(value: float) -> str:
    """A float literal that reads back to exactly the same float32."""
    value = float(np.float32(value))
    if np.isnan(value):
        return "NAN"
    if np.isinf(value):
        return "INFINITY" if value > 0 else "-INFINITY"
    return f"{value.hex()}f" if value != int(value) or abs(value) > 1e7 else f"{value:.1f}f"


@dataclass
class CContext:
    graph: Graph
    arena_offsets: dict[str, int]  # activation tensor -> byte offset in the arena
    weight_offsets: dict[str, int]  # constant tensor -> byte offset in the weight blob
    scratch_offsets: dict[str, int]  # node name -> byte offset of its scratch
    prefix: str = "model"
    declarations: list[str] = field(default_factory=list)
    kernels: set[str] = field(default_factory=set)  # runtime_c sources needed
    _counter: int = 0

    def tensor(self, name: str) -> Tensor:
        return self.graph.tensors[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.graph.tensors[name].shape

    def ptr(self, name: str) -> str:
        """C expression of a pointer to `name`'s first element ("NULL" for an omitted input)."""
        if not name:
            return "NULL"
        tensor = self.graph.tensors[name]
        member = UNION_MEMBER[tensor.dtype]
        size = np.dtype(C_NUMPY[member]).itemsize
        if tensor.is_const:
            offset = self.weight_offsets[name]
            return f"&{self.prefix}_weights.{member}[{offset // size}]"
        offset = self.arena_offsets[name]
        return f"&{self.prefix}_arena.{member}[{offset // size}]"

    def scratch(self, node: Node, dtype: DType = DType.FLOAT32) -> str:
        member = UNION_MEMBER[dtype]
        size = np.dtype(C_NUMPY[member]).itemsize
        return f"&{self.prefix}_arena.{member}[{self.scratch_offsets[node.name] // size}]"

    def declare(self, ctype: str, initializer: str, hint: str = "p") -> str:
        """Declare a `static const` object with the given initializer; returns its name."""
        self._counter += 1
        name = f"{c_identifier(hint)}_{self._counter}"
        self.declarations.append(f"static const {ctype} {name} = {initializer};")
        return name

    def int_array(self, values, hint: str = "dims", ctype: str = "int32_t") -> str:
        values = [int(v) for v in values] or [0]
        self._counter += 1
        name = f"{c_identifier(hint)}_{self._counter}"
        body = ", ".join(str(v) for v in values)
        self.declarations.append(f"static const {ctype} {name}[{len(values)}] = {{{body}}};")
        return name

    def need(self, *sources: str) -> None:
        self.kernels.update(sources)


C_NUMPY = {"f32": np.float32, "i8": np.int8, "u8": np.uint8, "i32": np.int32, "i64": np.int64,
           "u32": np.uint32}
