"""The scheduling problem behind a graph, in the exact terms of `memory.profile`.

`profile()` builds buffers per order; for scheduling we need the same model
as data that does not depend on the order:

* A **group** is the set of tensors that always share one buffer whatever
  the order: a root tensor (a graph input or a non-alias op output) plus
  every tensor reached from it through alias ops (Reshape & co.).  A group
  has the root's size, a producer op (None for graph inputs) and consumers
  (every op reading any of its tensors, alias ops included).
* For the step of op v, given the set S of ops run before it, a group is
  live iff it exists (its producer is in S or is v, or it is a graph input)
  and it is still needed (it holds a graph output, or some consumer is not
  in S, or v produced it, or it is an unused graph input and S is empty).
* In place: v's first output group y is not counted at v's step when one of
  v's in-place candidate inputs (`memory.inplace_sources`: same nbytes and
  dtype as the output, or, for a shrinking op, at least as large; not a
  constant) belongs to a group that holds no graph output and whose
  consumers all lie in S + {v}.  Afterwards y continues in that buffer
  (same size) or in its own bytes pinned inside it (shrinking), either way
  y's size (we check that alias ops keep the byte size; if one
  does not, `exact` is False and no optimality is claimed).
* Scratch is counted at the op's own step only.

These rules reproduce `profile()` step by step (tests check it on random
graphs and orders); whatever the scheduler decides, the peak it reports is
always recomputed by `profile()`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops import lookup, node_scratch_bytes
from onnx2mcu.memory import inplace_sources



def is_topological(order: Sequence[int], preds: Sequence[Sequence[int]]) -> bool:
    """Whether `order` is a permutation of range(len(preds)) with every predecessor first."""
    if sorted(order) != list(range(len(preds))):
        return False
    pos = [0] * len(preds)
    for t, v in enumerate(order):
        pos[v] = t
    return all(pos[p] < pos[v] for v in range(len(preds)) for p in preds[v])

@dataclass
class Group:
    index: int
    size: int
    producer: int | None  # op index, None for a graph input
    consumers: list[int] = field(default_factory=list)  # op indices, unique, ascending
    tensors: list[str] = field(default_factory=list)
    is_input: bool = False
    is_output: bool = False


class Problem:
    """Ops, groups and edges of one graph; op i is `graph.nodes[i]`."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.ops: list[Node] = list(graph.nodes)
        n = len(self.ops)
        self.groups: list[Group] = []
        self.group_of: dict[str, int] = {}
        self.exact = True
        self.notes: list[str] = []
        tensors = graph.tensors

        def new_group(name: str, producer: int | None) -> int:
            g = Group(len(self.groups), tensors[name].nbytes, producer, [], [name],
                      is_input=producer is None)
            self.groups.append(g)
            self.group_of[name] = g.index
            return g.index

        for name in graph.inputs:
            if name not in self.group_of:
                new_group(name, None)

        self.op_in: list[list[int]] = [[] for _ in range(n)]  # activation input groups (unique)
        self.op_new: list[list[int]] = [[] for _ in range(n)]  # groups this op creates
        self.op_out0: list[int | None] = [None] * n  # group created for output 0
        self.op_cands: list[list[int]] = [[] for _ in range(n)]  # in-place candidate groups, in order
        self.op_scratch: list[int] = [0] * n
        self.op_alias: list[bool] = [False] * n
        self.preds: list[set[int]] = [set() for _ in range(n)]  # tensor-level producer ops
        self.succs: list[set[int]] = [set() for _ in range(n)]
        producer_op: dict[str, int] = {}

        for i, node in enumerate(self.ops):
            op = lookup(node.op_type, node.domain)
            act = [t for t in node.inputs if t and not tensors[t].is_const]
            for t in act:
                if t not in self.group_of:
                    raise ValueError(f"{node.name}: input {t} is not produced before it")
                g = self.group_of[t]
                if g not in self.op_in[i]:
                    self.op_in[i].append(g)
                if t in producer_op:
                    p = producer_op[t]
                    if p != i:
                        self.preds[i].add(p)
                        self.succs[p].add(i)
            for index, out in enumerate(node.outputs):
                if not out or out in self.group_of or tensors[out].is_const:
                    continue
                producer_op[out] = i
                if op is not None and index == 0 and op.alias and act:
                    root = self.group_of[act[0]]
                    self.group_of[out] = root
                    self.groups[root].tensors.append(out)
                    self.op_alias[i] = True
                    if tensors[out].nbytes != self.groups[root].size:
                        self.exact = False
                        self.notes.append(f"alias {node.name} changes the byte size")
                    continue
                g = new_group(out, i)
                self.op_new[i].append(g)
                if index == 0:
                    self.op_out0[i] = g
                    if op is not None:
                        for name, _ in inplace_sources(graph, node):
                            cg = self.group_of[name]
                            if cg not in self.op_cands[i]:
                                self.op_cands[i].append(cg)
                            if self.groups[cg].size != tensors[name].nbytes:
                                self.exact = False
            self.op_scratch[i] = node_scratch_bytes(node, graph)

        for i in range(n):
            for g in self.op_in[i]:
                self.groups[g].consumers.append(i)
        for name in graph.outputs:
            if name in self.group_of:
                self.groups[self.group_of[name]].is_output = True
        self.sizes = [g.size for g in self.groups]
        self.cons = [g.consumers for g in self.groups]
        self.prod = [g.producer for g in self.groups]
        self.is_out = [g.is_output for g in self.groups]
        self.is_in = [g.is_input for g in self.groups]
        # graph inputs nobody reads live at step 0 only
        self.unused_input_bytes = sum(g.size for g in self.groups
                                      if g.is_input and not g.is_output and not g.consumers)

    @property
    def n(self) -> int:
        return len(self.ops)

    def order_of(self, indices: Sequence[int]) -> list[Node]:
        return [self.ops[i] for i in indices]

    def indices(self, order: Sequence[Node]) -> list[int]:
        where = {id(node): i for i, node in enumerate(self.ops)}
        return [where[id(node)] for node in order]

    def is_topological(self, order: Sequence[int]) -> bool:
        return is_topological(order, self.preds)

    def live_bytes(self, order: Sequence[int]) -> list[int]:
        """Live bytes per step of an op order, by the group rules (equals profile())."""
        n = len(order)
        if n == 0:
            return []
        pos = [0] * self.n
        for t, v in enumerate(order):
            pos[v] = t
        diff = [0] * (n + 1)
        for g in self.groups:
            first = 0 if g.producer is None else pos[g.producer]
            if g.is_output:
                last = n - 1
            elif g.consumers:
                last = max(pos[c] for c in g.consumers)
            else:
                last = first
            diff[first] += g.size
            diff[last + 1] -= g.size
        live = []
        acc = 0
        for t in range(n):
            acc += diff[t]
            live.append(acc)
        for t, v in enumerate(order):
            live[t] += self.op_scratch[v]
            y = self.op_out0[v]
            if y is not None and self.inplace_at(v, lambda c: pos[c] <= t):
                live[t] -= self.sizes[y]
        return live

    def inplace_at(self, v: int, done) -> bool:
        """Whether op v runs in place when `done(op)` tells which ops ran up to and including v."""
        for c in self.op_cands[v]:
            if self.is_out[c]:
                continue
            if all(done(u) for u in self.cons[c]):
                return True
        return False


def ancestors_descendants(n: int, preds: Sequence[set[int]] | Sequence[Sequence[int]],
                          topo: Sequence[int]) -> tuple[list[int], list[int]]:
    """Bitsets (python ints) of strict ancestors and descendants per node; `topo` is a topological order."""
    anc = [0] * n
    for v in topo:
        a = 0
        for p in preds[v]:
            a |= anc[p] | (1 << p)
        anc[v] = a
    succs: list[list[int]] = [[] for _ in range(n)]
    for v in range(n):
        for p in preds[v]:
            succs[p].append(v)
    desc = [0] * n
    for v in reversed(topo):
        d = 0
        for s in succs[v]:
            d |= desc[s] | (1 << s)
        desc[v] = d
    return anc, desc
