"""Where every operator is defined, once.

An `OpDef` gathers everything the pipeline needs to know about one op type:
its numpy reference (the simulator), how it uses memory (alias, in-place,
scratch), its cost and which dtypes it accepts.  How a node becomes C is not here: the
kernels live in codegen (codegen/kernels.py, codegen/emit/).
Standard ONNX ops take their shape rule from ONNX shape inference; ops of
our own domain give `infer`.  Adding an op is one `register(...)` call in the
module of its family under `onnx2mcu/ops/`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from onnx2mcu.ir import DType, Graph, Node, Tensor

Reference = Callable[..., list]
"""(node, input arrays with None for omitted inputs[, params]) -> output arrays.  An op with a
`prepare` step also takes its Params as a third argument (None: a caller without a graph, such
as constant folding; the reference then derives what it needs from the node itself)."""

Prepare = Callable[[Node, Graph], Any]
"""(node, graph) -> the op's Params (a frozen dataclass per op family): what both the numpy
reference and the C emitter need, computed once at compile time (docs/ARCHITECTURE.md, Params)."""

FLOAT = frozenset({DType.FLOAT32})
INDEX = frozenset({DType.INT64, DType.INT32})
ANY_SUPPORTED = frozenset(dtype for dtype in DType if dtype.info.ops)  # see ir.DTYPE_TABLE
BOOL = frozenset({DType.BOOL})
QUANT = frozenset({DType.INT8, DType.UINT8})
INTEGER = INDEX | QUANT
NUMERIC = FLOAT | INTEGER


def _zero(node: Node, graph: Graph) -> int:
    return 0


def _output_elements(node: Node, graph: Graph) -> int:
    return sum(graph.tensors[o].numel for o in node.outputs if o)


@dataclass(frozen=True)
class OpDef:
    """One operator type.

    `inplace_inputs`: indices of inputs whose bytes the (first) output may
    take over when that input dies at this op and has the output's size.
    `alias`: the output is the input's bytes reinterpreted (Reshape & co.);
    it costs no memory and no work.
    `dtypes`: per input position the accepted element types; positions past
    the tuple reuse its last entry.  Used to decide what we can run.
    """

    op_type: str
    reference: Reference
    domain: str = ""
    dtypes: tuple[frozenset, ...] = (FLOAT,)
    alias: bool = False
    inplace_inputs: tuple[int, ...] = ()
    scratch_bytes: Callable[[Node, Graph], int] = _zero
    macs: Callable[[Node, Graph], int] = _output_elements
    infer: Callable[[Node, list[Tensor]], list[tuple[tuple[int, ...], DType]]] | None = None
    check: Callable[[Node, Graph], str | None] | None = None
    """Returns why this particular node cannot run (unsupported attribute...), or None."""
    index_rows: Callable[[Node, Graph], "dict[int, int]"] | None = None
    """{input position: rows of the table it indexes}: seeded test inputs stay valid ids."""
    extra: dict = field(default_factory=dict)
    prepare: Prepare | None = None
    """Computes the node's Params once (`prepared(node, graph)` caches them on the graph)."""
    int8_check: Callable[[Node, Graph], str | None] | None = None
    """QUANT_INTEGER ops: why this quantized node cannot run on the integers (it then runs as a
    float island), or None."""
    int8_inplace: tuple[int, ...] | None = None
    """inplace_inputs of the node when it runs on quantized int8 (None: the same as in float)."""
    quantized: str = "float"
    """How a node of this op runs on quantized tensors (Tensor.quant):
    QUANT_FLOAT: no integer implementation; graph_opt/float_islands.py runs it as
    DequantizeLinear -> float op -> QuantizeLinear.  QUANT_PASSTHROUGH: it only moves or
    selects elements, so on tensors sharing one QuantParams it runs on the integers
    as they are (its kernels take int8/uint8).  QUANT_INTEGER: it has its own integer
    reference and kernel (requantizing), chosen per node by `int8_check`
    (onnx2mcu/ops/int8.py attaches them)."""
    inplace_rule: Callable[[Node, Graph], tuple[int, ...]] | None = None
    """inplace_inputs that depend on the node (its geometry), for ops whose kernels overwrite
    their input only in some shapes (the memory-rewrite kernels, onnx2mcu/ops/memrw.py);
    None: `inplace_inputs`."""
    inplace_shrink: Callable[[Node, Graph], tuple[int, ...]] | None = None
    """Shrinking in place: inputs whose bytes the (first) output may take, from the input's
    first byte on, when that input dies at this op and is at least as large as the output
    (any dtype).  Only for kernels that never overwrite an input byte they still have to read
    (QuantizeLinear float -> int8 in forward order; the in-place int8 depthwise conv, channel
    by channel through a scratch).  The output then keeps only its own bytes after this step
    (onnx2mcu/memory.py: a buffer pinned to the input's offset)."""

    def accepts(self, position: int, dtype: DType) -> bool:
        allowed = self.dtypes[min(position, len(self.dtypes) - 1)]
        return dtype in allowed


QUANT_FLOAT, QUANT_PASSTHROUGH, QUANT_INTEGER = "float", "passthrough", "integer"
QUANTIZED_MODES = (QUANT_FLOAT, QUANT_PASSTHROUGH, QUANT_INTEGER)
# Standard ops that only move or select elements, with C kernels that copy bytes of
# any dtype; their registrations get QUANT_PASSTHROUGH unless they say otherwise.
# (MaxPool and Pad have their own int8 kernels: onnx2mcu/ops/int8.py.)
PASSTHROUGH_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose",
                             "Concat", "Split", "Slice", "Gather", "DepthToSpace", "SpaceToDepth",
                             "Tile", "Expand"})
# Ops that commute with quantizing their one data input: quantization is elementwise and
# monotone, so moving, selecting or taking the max of elements gives the same integers
# before or after it.  frontend/qdq.py moves a QuantizeLinear from such an op's output to its
# input (PyTorch's PT2E graphs quantize after `Clip -> MaxPool`), exactly.
COMMUTES_WITH_QUANTIZE = PASSTHROUGH_OPS | {"MaxPool"}

_REGISTRY: dict[tuple[str, str], OpDef] = {}


def register(op_type: str, reference: Reference, **kwargs) -> OpDef:
    if "quantized" not in kwargs and not kwargs.get("domain") and op_type in PASSTHROUGH_OPS:
        kwargs["quantized"] = QUANT_PASSTHROUGH
    op = OpDef(op_type=op_type, reference=reference, **kwargs)
    if op.quantized not in QUANTIZED_MODES:
        raise ValueError(f"op {op_type}: quantized must be one of {QUANTIZED_MODES}")
    key = (op.domain, op.op_type)
    if key in _REGISTRY:
        raise ValueError(f"op {op_type} registered twice")
    _REGISTRY[key] = op
    return op


def upgrade(op_type: str, **changes) -> OpDef:
    """Replace fields of a registered op (onnx2mcu/ops/int8.py gives ops their integer path)."""
    from dataclasses import replace

    key = ("", op_type)
    op = replace(_REGISTRY[key], **changes)
    if op.quantized not in QUANTIZED_MODES:
        raise ValueError(f"op {op_type}: quantized must be one of {QUANTIZED_MODES}")
    _REGISTRY[key] = op
    return op


def prepared(node: Node, graph: Graph) -> Any:
    """The node's Params (None for ops without a `prepare`), computed once per graph and node.

    Cached in `Graph.prepared` under the node's name, together with what they were computed
    from (the node object, its inputs and outputs, the graph's requant mode): a rewrite that
    replaces the node or rewires it gets fresh Params."""
    op = lookup(node.op_type, node.domain)
    if op is None or op.prepare is None:
        return None
    stamp = (id(node), tuple(node.inputs), tuple(node.outputs), graph.requant)
    hit = graph.prepared.get(node.name)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    params = op.prepare(node, graph)
    graph.prepared[node.name] = (stamp, params)
    return params


def run_reference(node: Node, inputs: list, graph: Graph) -> list:
    """The node's numpy reference, given its prepared Params when its op has a `prepare`."""
    op = lookup(node.op_type, node.domain)
    if op.prepare is None:
        return op.reference(node, inputs)
    return op.reference(node, inputs, prepared(node, graph))


def lookup(op_type: str, domain: str = "") -> OpDef | None:
    if domain == "ai.onnx":
        domain = ""
    return _REGISTRY.get((domain, op_type))


def all_ops() -> list[OpDef]:
    return sorted(_REGISTRY.values(), key=lambda o: (o.domain, o.op_type))


def unsupported_reason(node: Node, graph: Graph) -> str | None:
    """Why `node` cannot run here, or None when it can."""
    op = lookup(node.op_type, node.domain)
    if op is None:
        return "op not supported"
    for position, name in enumerate(node.inputs):
        if not name:
            continue
        tensor = graph.tensors[name]
        if op.accepts(position, tensor.dtype):
            continue
        if tensor.quant is not None:
            if op.quantized == QUANT_INTEGER and op.int8_check is not None and op.int8_check(node, graph) is None:
                continue  # runs on the integers (onnx2mcu/ops/int8.py)
            if op.accepts(position, DType.FLOAT32):
                continue  # dequantized around the node (graph_opt/float_islands.py)
        return f"input {position} has dtype {tensor.dtype.value}, not supported"
    if op.check is not None:
        reason = op.check(node, graph)
        if reason:
            return reason
    return None


def node_inplace_inputs(node: Node, graph: Graph) -> tuple[int, ...]:
    """Inputs whose bytes this node's output may take over (`OpDef.inplace_inputs`; an int8
    kernel may differ: `OpDef.int8_inplace`)."""
    op = lookup(node.op_type, node.domain)
    if op is None:
        return ()
    if op.inplace_rule is not None:
        return op.inplace_rule(node, graph)
    if op.int8_inplace is not None and any(
            n and graph.tensors[n].quant is not None and graph.tensors[n].dtype is DType.INT8
            and not graph.tensors[n].is_const for n in node.inputs):
        return op.int8_inplace
    return op.inplace_inputs


def node_shrink_inputs(node: Node, graph: Graph) -> tuple[int, ...]:
    """Inputs whose bytes this node's output may take even when it is smaller than them
    (`OpDef.inplace_shrink`)."""
    op = lookup(node.op_type, node.domain)
    if op is None or op.inplace_shrink is None:
        return ()
    return op.inplace_shrink(node, graph)


def node_scratch_bytes(node: Node, graph: Graph) -> int:
    """Scratch bytes `node` needs while it runs: what its selected kernel recorded on the
    graph (`Graph.scratch`, see codegen/kernels.py), else its op's formula."""
    if node.name in graph.scratch:
        return int(graph.scratch[node.name])
    op = lookup(node.op_type, node.domain)
    return int(op.scratch_bytes(node, graph)) if op is not None else 0


def shape_inputs(*positions: int) -> dict:
    """`extra` for an op whose output shape depends on the values of these inputs.

    The IR has static shapes, so such inputs must be constants at compile
    time (e.g. Reshape's `shape`, Slice's `starts`...).
    """
    return {"shape_inputs": tuple(positions)}


def broadcast_inputs(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    return list(np.broadcast_arrays(*arrays))
