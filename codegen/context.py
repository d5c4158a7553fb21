"""What an op's C emitter sees: typed pointers, shapes and a place for constant tables.

Each kernel's `emit(node, ctx)` (codegen/kernels.py) returns the C statements for one step; it
asks the context for the C expression of a tensor (`ctx.ptr`) and declares
any parameter struct or small table it needs (`ctx.declare`, `ctx.int_array`).
Activations are pointers into the one static arena at their planned offsets;
constants are pointers into the flash weight blob.  An emitter that cannot
serve a particular node (an attribute or a rank the kernels do not cover)
calls `ctx.refuse(node, why)`, which raises `NotSupportedInC`.

Emitters must be deterministic: the same graph and schedule give the same
statements and declarations, in the same order.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import NoReturn, Sequence

import numpy as np

from onnx2mcu.errors import UserError
from onnx2mcu.ir import DType, Graph, Node, Tensor

# all derived from the one dtype table (onnx2mcu/ir.py DTYPE_TABLE)
C_TYPES = {dtype: dtype.ctype for dtype in DType}
UNION_MEMBER = {dtype: dtype.member for dtype in DType}  # arena / weight union member to index
KERNEL_SUFFIX = {dtype: dtype.suffix for dtype in DType}  # o2m_add_f32, o2m_equal_b8 ...
C_NUMPY = {dtype.member: dtype.numpy for dtype in DType}  # union member -> its element type

# runtime_c source of each kernel family
CONV, ELEMENTWISE, LINALG, NORM, TENSOR, QUANT = (
    "o2m_conv.c", "o2m_elementwise.c", "o2m_linalg.c", "o2m_norm.c", "o2m_tensor.c", "o2m_quant.c")
BINARY, ADDER, MCUBERT = "o2m_binary.c", "o2m_adder.c", "o2m_mcubert.c"
# families whose headers are copied and included only when a model calls them
MISC, RESIZE, CONVT, DYNQUANT = "o2m_misc.c", "o2m_resize.c", "o2m_convt.c", "o2m_dynquant.c"
S8_PATCH = "o2m_s8_patch.c"  # patch-based inference (codegen/emit/patch.py)
ON_DEMAND_SOURCES = (CONVT, DYNQUANT, MISC, RESIZE, S8_PATCH)

INT32_MAX = 2**31 - 1


class NotSupportedInC(UserError):
    """This node is valid (the simulator runs it) but no C kernel call covers it yet."""


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
    if value == int(value) and abs(value) <= 1e7:
        return f"{value:.1f}f"
    if abs(value) < 1.1754943508222875e-38:  # subnormal: exact hex, no "truncated" warnings
        return f"{value.hex()}f"
    text = str(np.float32(value))  # shortest decimal that reads back to this float32
    return f"{text}f" if float(np.float32(text)) == value else f"{value.hex()}f"


def c_int(value: int, ctype: str = "int32_t") -> str:
    """An integer literal of `ctype` (INT64_C for 64-bit values; INT_MIN spelled safely)."""
    value = int(value)
    if ctype == "int64_t":
        if value == -2**63:
            return "INT64_MIN"
        return f"INT64_C({value})"
    if ctype == "int32_t" and value == -2**31:
        return "INT32_MIN"
    return str(value)


def c_scalar(value, dtype: DType) -> str:
    if dtype is DType.FLOAT32:
        return c_float(value)
    if dtype is DType.BOOL:
        return "1" if bool(value) else "0"
    return c_int(value, C_TYPES[dtype])


def dense_strides(shape: Sequence[int]) -> list[int]:
    strides, acc = [], 1
    for dim in reversed(list(shape)):
        strides.append(acc)
        acc *= int(dim)
    return strides[::-1]


@dataclass
class CContext:
    graph: Graph
    arena_offsets: dict[str, int]  # activation tensor -> byte offset in the arena
    weight_offsets: dict[str, int]  # constant tensor -> byte offset in the weight blob
    scratch_offsets: dict[str, int]  # node name -> byte offset of its scratch
    prefix: str = "model"
    ext_offsets: dict[str, int] = field(default_factory=dict)  # constants in the external blob
    declarations: list[str] = field(default_factory=list)
    kernels: set[str] = field(default_factory=set)  # runtime_c sources needed
    _counter: int = 0
    _interned: dict[str, str] = field(default_factory=dict)
    _read: set[str] | None = None
    # constant -> the bytes the weight blob holds for it instead of its data (same size: a
    # kernel's own layout, see relayout_const)
    relaid: dict[str, np.ndarray] = field(default_factory=dict)

    def is_used(self, name: str) -> bool:
        """Whether a tensor is read by a node or is a graph output (else its value is moot)."""
        if self._read is None:
            self._read = {n for node in self.graph.nodes for n in node.inputs if n}
            self._read.update(self.graph.outputs)
        return bool(name) and name in self._read

    def relayout_const(self, name: str, node: Node, data: np.ndarray) -> bool:
        """Store `data` (the same number of bytes) in the weight blob in place of constant
        `name`'s, when `node` is its only reader (and it is no graph output): a kernel that
        wants its weights in another order then costs no extra flash.  Returns whether done
        (else the caller keeps the tensor's own bytes and must declare a copy)."""
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        tensor = self.graph.tensors[name]
        readers = sum(n == name for other in self.graph.nodes for n in other.inputs)
        if (not tensor.is_const or raw.size != tensor.nbytes or readers != 1 or name not in node.inputs
                or name in self.graph.outputs or name in self.relaid):
            return False
        self.relaid[name] = raw
        return True

    # ----- tensors --------------------------------------------------------
    def tensor(self, name: str) -> Tensor:
        return self.graph.tensors[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.graph.tensors[name].shape)

    def dtype(self, name: str) -> DType:
        return self.graph.tensors[name].dtype

    def numel(self, name: str) -> int:
        return self.graph.tensors[name].numel

    def nbytes(self, name: str) -> int:
        return self.graph.tensors[name].nbytes

    def ctype(self, name: str) -> str:
        return C_TYPES[self.dtype(name)]

    def is_const(self, name: str) -> bool:
        return bool(name) and self.graph.tensors[name].is_const

    def ptr(self, name: str, offset: int = 0) -> str:
        """C expression of a pointer to `name`'s element `offset` ("NULL" for an omitted input)."""
        if not name:
            return "NULL"
        tensor = self.graph.tensors[name]
        member = UNION_MEMBER[tensor.dtype]
        size = np.dtype(C_NUMPY[member]).itemsize
        if tensor.is_const and name in self.ext_offsets:
            base = self.ext_offsets[name]
            return f"&{self.prefix}_weights_ext.{member}[{base // size + int(offset)}]"
        if tensor.is_const:
            base = self.weight_offsets[name]
            return f"&{self.prefix}_weights.{member}[{base // size + int(offset)}]"
        base = self.arena_offsets[name]
        return f"&{self.prefix}_arena.{member}[{base // size + int(offset)}]"

    def same_bytes(self, a: str, b: str) -> bool:
        """Whether two activations start at the same arena byte (in-place or alias)."""
        return (not self.is_const(a) and not self.is_const(b)
                and self.arena_offsets[a] == self.arena_offsets[b])

    def scalar(self, name: str) -> str:
        """The first element of `name` as a C rvalue: a literal for a constant."""
        tensor = self.graph.tensors[name]
        if tensor.is_const:
            return c_scalar(np.asarray(tensor.data).reshape(-1)[0], tensor.dtype)
        return f"({self.ptr(name)})[0]"

    def scratch(self, node: Node, dtype: DType = DType.FLOAT32) -> str:
        member = UNION_MEMBER[dtype]
        size = np.dtype(C_NUMPY[member]).itemsize
        return f"&{self.prefix}_arena.{member}[{self.scratch_offsets[node.name] // size}]"

    # ----- declarations ---------------------------------------------------
    def _name(self, hint: str) -> str:
        self._counter += 1
        return f"{c_identifier(hint)}_{self._counter}"

    def _intern(self, key: str, make) -> str:
        """Identical declarations are emitted once (keeps model.c small, stays deterministic)."""
        if key not in self._interned:
            self._interned[key] = make()
        return self._interned[key]

    def declare(self, ctype: str, initializer: str, hint: str = "p") -> str:
        """Declare a `static const` object with the given initializer; returns its name."""
        def make() -> str:
            name = self._name(hint)
            self.declarations.append(f"static const {ctype} {name} = {initializer};")
            return name
        return self._intern(f"{ctype}|{hint}|{initializer}", make)

    def int_array(self, values, hint: str = "dims", ctype: str = "int32_t") -> str:
        values = [int(v) for v in values] or [0]
        body = ", ".join(c_int(v, ctype) for v in values)

        def make() -> str:
            name = self._name(hint)
            self.declarations.append(f"static const {ctype} {name}[{len(values)}] = {{{body}}};")
            return name
        return self._intern(f"{ctype}[]|{hint}|{body}", make)

    def float_array(self, values, hint: str = "scales") -> str:
        """A static const float table (values exact as float32)."""
        items = [c_float(v) for v in np.asarray(values, np.float32).reshape(-1).tolist()] or ["0.0f"]
        body = ", ".join(items)

        def make() -> str:
            name = self._name(hint)
            self.declarations.append(f"static const float {name}[{len(items)}] = {{{body}}};")
            return name
        return self._intern(f"float[]|{hint}|{body}", make)

    def include(self, header: str) -> None:
        """#include a runtime_c header model.c does not include by default (the int8 kernels')."""
        self._intern(f"#include|{header}", lambda: self.declarations.insert(0, f'#include "{header}"') or header)

    def ptr_array(self, names: Sequence[str], writable: bool, hint: str) -> str:
        """A static table of pointers to tensors (Concat inputs, Split outputs)."""
        body = ", ".join(self.ptr(n) for n in names)
        ctype = "void *const" if writable else "const void *const"

        def make() -> str:
            name = self._name(hint)
            self.declarations.append(f"static {ctype} {name}[{len(names)}] = {{{body}}};")
            return name
        return self._intern(f"{ctype}[]|{hint}|{body}", make)

    def const_value(self, value, dtype: DType, hint: str = "value") -> str:
        """Name of a one-element static const array of `dtype` holding `value` (usable as a pointer)."""
        ctype = C_TYPES[dtype]
        literal = c_scalar(value, dtype)

        def make() -> str:
            name = self._name(hint)
            self.declarations.append(f"static const {ctype} {name}[1] = {{{literal}}};")
            return name
        return self._intern(f"{ctype}[1]|{hint}|{literal}", make)

    def need(self, *sources: str) -> None:
        self.kernels.update(sources)

    # ----- errors ---------------------------------------------------------
    def refuse(self, node: Node, why: str) -> NoReturn:
        raise NotSupportedInC(f"'{node.name}' ({node.op_type}): {why}")

    def check_size(self, node: Node, *names: str) -> None:
        for name in names:
            if name and self.numel(name) > INT32_MAX:
                self.refuse(node, f"tensor '{name}' has more than 2^31-1 elements")


def prod(values) -> int:
    return int(math.prod(int(v) for v in values))


# ----- layout helpers shared by the emitters -------------------------------
def simplify_strided(dims: Sequence[int], strides: Sequence[Sequence[int]]
                     ) -> tuple[list[int], list[list[int]]]:
    """Drop size-1 dims and merge neighbours that every operand walks contiguously.

    `strides[j][d]` is operand j's element stride along dim d.  Returns the
    shorter (dims, strides) describing the same element walk; the empty dims
    list is one element.
    """
    kept = [d for d in range(len(dims)) if int(dims[d]) != 1]
    out_dims = [int(dims[d]) for d in kept]
    out_strides = [[int(s[d]) for d in kept] for s in strides]
    i = len(out_dims) - 1
    while i > 0:
        inner = i
        outer = i - 1
        if all(s[outer] == s[inner] * out_dims[inner] for s in out_strides):
            out_dims[inner] *= out_dims[outer]
            del out_dims[outer]
            for s in out_strides:
                del s[outer]
        i -= 1
    return out_dims, out_strides


def broadcast_strides(shape: Sequence[int], out_shape: Sequence[int]) -> list[int]:
    """Element strides of a dense `shape` operand broadcast to `out_shape` (0 where broadcast)."""
    rank = len(out_shape)
    padded = [1] * (rank - len(shape)) + [int(d) for d in shape]
    dense = dense_strides(padded)
    return [0 if padded[d] == 1 and int(out_shape[d]) != 1 else dense[d] for d in range(rank)]


def axis_view(shape: Sequence[int], first: int, last: int) -> tuple[int, int, int]:
    """(outer, n, inner) of `shape` seen around the axes [first, last]."""
    return prod(shape[:first]), prod(shape[first:last + 1]), prod(shape[last + 1:])


def bc_view(other: Sequence[int], out_shape: Sequence[int]) -> tuple[int, int, int] | None:
    """(outer, mid, inner) when `other` broadcast to `out_shape` is one run of its dims.

    That is, `other`'s non-1 dims equal the output's over one contiguous
    stretch of output dims (ignoring output dims of size 1): the form the
    runtime's `_bc` kernels take.  None otherwise.
    """
    rank = len(out_shape)
    padded = [1] * (rank - len(other)) + [int(d) for d in other]
    out = [int(d) for d in out_shape]
    if prod(padded) == 1:
        return 1, 1, prod(out)
    live = [d for d in range(rank) if out[d] != 1]
    same = [d for d in live if padded[d] == out[d]]
    if any(padded[d] not in (1, out[d]) for d in range(rank)):
        return None
    if not same:
        return None
    first, last = same[0], same[-1]
    if any(padded[d] != out[d] for d in live if first <= d <= last):
        return None
    return prod(out[:first]), prod(out[first:last + 1]), prod(out[last + 1:])
