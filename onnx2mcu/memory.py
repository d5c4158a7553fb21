"""The memory model, shared by every stage: buffers, their lifetimes, and alignment.

What is live at each step of a given order (docs/ARCHITECTURE.md, memory model).
A *buffer* is a run of arena bytes shared by tensors: an alias op's output
shares its input's buffer (Reshape & co. cost nothing), and an in-place op's
output takes over an input buffer that dies at that op.  Whether an op can
go in place depends on the order (the input must die there), so buffers are
built per order.  Steps are positions in the order; a buffer is live over
[first, last] inclusive.  Graph inputs are live from step 0, graph outputs
to the last step, and an op's scratch is live during its own step only.

Shrinking in place (`OpDef.inplace_shrink`: QuantizeLinear float -> int8, the in-place
int8 depthwise conv): an op whose kernel writes a smaller output from the first byte of a
dying input without destroying what it still reads.  Its output is a buffer of its own size,
live from the next step on, *pinned* to the input buffer's offset (`Buffer.pinned_to`): at
the op's step only the input's bytes count (the output is inside them), afterwards only the
output's.  The arena planner places a pinned group at one offset (scheduler/arena.py).

The memory rewrites (graph_opt/act_on_load.py, eager_accumulation.py,
partial_conv.py, inplace_conv.py) need no rule of their own beyond these, by construction
of their ops (onnx2mcu/ops/memrw.py, whose in-place inputs depend on the node:
`OpDef.inplace_rule`): an activation applied on load is part of
its reader's step, so its output is simply not a tensor; an accumulate step
(AccumulateKernel, input 0 the accumulator) is an in-place op whose output
takes the accumulator's bytes when the accumulator dies there, as every
partial sum does (it has one reader; only a chain's first value may be a
branch that others still read, and then the first step writes a new buffer).  So
`profile`, the scheduler's `Problem`, the arena planner and the simulator's
overlap check all see the rewritten memory behaviour through the same rules.

It lives in the core because graph_opt (tile sizing), the scheduler, codegen
(weight layout) and the simulator all measure memory the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops import lookup, node_scratch_bytes
from onnx2mcu.ops.registry import node_inplace_inputs, node_shrink_inputs

ALIGNMENT = 16  # every arena buffer and every weight starts at a multiple of this


def align(value: int, alignment: int = ALIGNMENT) -> int:
    """`value` rounded up to a multiple of `alignment`."""
    return (value + alignment - 1) // alignment * alignment


@dataclass
class Buffer:
    index: int
    nbytes: int
    first: int
    last: int
    tensors: list[str] = field(default_factory=list)
    scratch_of: str | None = None  # node name, for scratch buffers
    pinned_to: int | None = None
    """Shrinking in place: the index of the buffer whose offset this one must share (the dying
    input it was written over, live up to the step before this buffer's `first`)."""

    @property
    def label(self) -> str:
        return f"scratch:{self.scratch_of}" if self.scratch_of else self.tensors[0]

    @property
    def empty(self) -> bool:
        """Live at no step: a shrinking in-place output nobody reads after its own step."""
        return self.last < self.first

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return (self.first <= other.last and other.first <= self.last
                and not self.empty and not other.empty)


@dataclass
class MemoryProfile:
    order: list[Node]
    buffers: list[Buffer]
    buffer_of: dict[str, int]  # tensor name -> buffer index
    live_bytes: list[int]  # per step

    @property
    def peak_bytes(self) -> int:
        return max(self.live_bytes, default=0)

    @property
    def peak_step(self) -> int:
        return max(range(len(self.live_bytes)), key=self.live_bytes.__getitem__, default=0)

    def live_at(self, step: int) -> list[Buffer]:
        return [b for b in self.buffers if b.first <= step <= b.last]

    def pin_root(self, index: int) -> int:
        """The buffer whose offset buffer `index` shares (itself when not pinned)."""
        while self.buffers[index].pinned_to is not None:
            index = self.buffers[index].pinned_to
        return index


def inplace_sources(graph: Graph, node: Node) -> list[tuple[str, bool]]:
    """The inputs whose bytes `node`'s first output may take over if they die at `node`, in the
    order they are tried, each with whether the output then shrinks into them: the op's
    in-place inputs of the output's size and dtype, then its shrinking inputs at least as large
    as the output.  The one eligibility rule of `profile` and the scheduler's `Problem`;
    whether the input dies there depends on the order."""
    if not node.outputs or not node.outputs[0]:
        return []
    out = graph.tensors[node.outputs[0]]
    found: list[tuple[str, bool]] = []

    def usable(position: int) -> str | None:
        if position >= len(node.inputs) or not node.inputs[position]:
            return None
        name = node.inputs[position]
        return None if graph.tensors[name].is_const or any(name == f for f, _ in found) else name

    for position in node_inplace_inputs(node, graph):
        name = usable(position)
        if name and graph.tensors[name].nbytes == out.nbytes and graph.tensors[name].dtype == out.dtype:
            found.append((name, False))
    for position in node_shrink_inputs(node, graph):
        name = usable(position)
        if name and graph.tensors[name].nbytes >= out.nbytes:
            found.append((name, graph.tensors[name].nbytes > out.nbytes))
    return found


def profile(graph: Graph, order: Sequence[Node] | None = None, inplace: bool = True) -> MemoryProfile:
    """Buffers and live bytes per step for `order` (default: the graph's own order).

    An output written over a larger dying input (shrinking in place) gets a buffer of its own
    size, live from the step after its producer's and pinned to the input's offset: at the
    producer's step the input's bytes hold both, afterwards only the output's are live."""
    order = list(graph.nodes if order is None else order)
    n_steps = max(len(order), 1)
    last_use: dict[str, int] = {}
    for step, node in enumerate(order):
        for name in node.inputs:
            if name:
                last_use[name] = step
    outputs = set(graph.outputs)

    buffers: list[Buffer] = []
    buffer_of: dict[str, int] = {}

    def new_buffer(tensor: str, first: int, pinned_to: int | None = None) -> None:
        buffer_of[tensor] = len(buffers)
        last = first if pinned_to is None else first - 1  # grown below by its readers
        buffers.append(Buffer(len(buffers), graph.tensors[tensor].nbytes, first, last, [tensor],
                              pinned_to=pinned_to))

    def extend(tensor: str, into: int) -> None:
        buffer_of[tensor] = into
        buffers[into].tensors.append(tensor)

    for name in graph.inputs:
        new_buffer(name, 0)
    for step, node in enumerate(order):
        op = lookup(node.op_type, node.domain)
        for index, out in enumerate(node.outputs):
            if not out or out in buffer_of or graph.tensors[out].is_const:
                continue
            target = None
            if op is not None and index == 0 and op.alias and node.inputs[0] in buffer_of:
                target = buffer_of[node.inputs[0]]
            elif op is not None and index == 0 and inplace:
                target = _inplace_target(graph, node, buffer_of, buffers, last_use, outputs, step, out)
            if target is None:
                new_buffer(out, step)
            elif buffers[target].nbytes == graph.tensors[out].nbytes:
                extend(out, target)
            else:  # shrinking in place: its own bytes from the next step, at the input's offset
                new_buffer(out, step + 1, pinned_to=target)
    # lifetimes: a buffer lives until the last use of any tensor it holds
    for buffer in buffers:
        if buffer.scratch_of:
            continue
        for tensor in buffer.tensors:
            buffer.last = max(buffer.last, last_use.get(tensor, buffer.last))
            if tensor in outputs:
                buffer.last = n_steps - 1
    for step, node in enumerate(order):
        scratch = node_scratch_bytes(node, graph)
        if scratch > 0:
            buffers.append(Buffer(len(buffers), scratch, step, step, [], scratch_of=node.name))
    live = [0] * len(order)
    for buffer in buffers:
        for step in range(buffer.first, min(buffer.last, len(order) - 1) + 1):
            live[step] += buffer.nbytes
    return MemoryProfile(order, buffers, buffer_of, live)


def _inplace_target(graph: Graph, node: Node, buffer_of: dict[str, int], buffers: list[Buffer],
                    last_use: dict[str, int], outputs: set[str], step: int, out: str) -> int | None:
    """An input buffer the output may overwrite (`inplace_sources`) that nothing reads after
    this step and that is at least as large as the output."""
    out_bytes = graph.tensors[out].nbytes
    for name, _ in inplace_sources(graph, node):
        buffer = buffers[buffer_of[name]]
        if buffer.nbytes < out_bytes:
            continue
        if any(t in outputs or last_use.get(t, -1) > step for t in buffer.tensors):
            continue
        return buffer.index
    return None
