"""Iterative graph fusion: merge ops into super-nodes while an optimal order stays reachable.

A super-node is a list of ops that always run back to back.  Scheduling the
fused graph and expanding each super-node gives an op order; fusion is
*safe* when, for every order of the unfused graph, some order of the fused
graph is at least as good, so the fused optimum equals the true optimum.
Every rule below is proved by an exchange argument on an arbitrary order in
which the existing super-nodes already run as blocks (true of some optimal
order, by induction over the merges): moving one block next to the other
raises no step's live bytes.

**Descriptor.**  Each super-node v is summarised, exactly, by
  In(v)   groups it reads that are made elsewhere,
  Out(v)  groups it makes that outlive it (read later, or graph outputs),
  T(v)    bytes it adds at its step on top of all of In(v) and of what is
          live across it (its new groups, scratch, in-place savings, the
          maximum over its internal steps),
  K(v), sigma(v)  an order-dependent in-place saving: the step costs
          sigma less when, for some group e in K(v), every other reader
          of e ran before v.
  T0(v)   T(v) when v runs first (graph inputs nobody reads are live during
          step 0 only, i.e. during v's first internal step).
So the live bytes at v's step are  live-across + |In(v)| + T(v) - sigma*[...].
`describe()` computes it by replaying the memory model over the super-node's
internal steps for every combination of which external inputs are dead
after v's last read ("scenarios"), and rejects a merge whose result does not
fit this form (then the fused-level model would not be exact).

**Rules** (A, B super-nodes; all-bytes quantities are sums of group sizes):

R0  alias.  An alias op (Reshape & co.) whose only activation inputs are in
    one group joins the super-node of the op that produced the tensor it
    reads, right after that op; an alias op of a graph input joins a
    prologue super-node that runs first.  Safe: the alias step allocates
    nothing and everything live at it was live at the step before (or, at
    step 0, every graph input is live whatever runs there), and running it
    earlier only ends its input's buffer sooner, which can only allow more
    in-place.

R1  pull-up: B runs right after A.  Conditions: all of B's predecessors are
    in A and every group B reads was made by A; every successor of A is B
    and no group made by A is a graph output; |Out(B)| <= |Out(A)|; and
    |Out(A)| + T(B) <= T(A) + Dst(A) - (sigma(A) - min size over K(A), when
    that is positive), where Dst(A) = groups A reads that nobody else reads.
    Proof: moving B's block up to right after A changes each step between by
    -|Out(A)| + |Out(B)| <= 0 (Out(A) was live there; Out(B) now is) and
    changes no in-place decision (B reads only A's private groups); B's new
    step holds what was live after A, which is A's step minus what died at
    A (at least Dst(A), plus the candidate whose death enabled A's in-place
    saving) plus Out(A), so the last condition makes it no larger than A's
    step.

R2  push-down: A runs right before B.  Conditions: every successor of A is
    B and no group made by A is a graph output; no other reader of A's
    inputs has an order-dependent in-place candidate on them;
    I' <= |Out(A)| and I' + T(A) <= |Out(A)| + T(B) - sigma(B)[K(B) non-empty],
    where I' = groups A reads that B does not read and that are not graph
    outputs.  Proof: moving A's block down to right before B changes each
    step between by -|Out(A)| plus at most I' (inputs A was last to read now
    live longer), changes no other op's in-place decision, and A's new step
    holds B's old live set minus Out(A) plus at most I', so it is no larger
    than B's old step.

A rule only fires if `describe()` accepts the merged super-node.  R1 and R2
are tried on every edge until nothing changes; the merges made in one round
touch disjoint sets of groups, so each one's conditions still hold after the
others (every condition only reads the descriptors and readers of the groups
around its own pair).  Tests check on thousands of random graphs that the
fused optimum equals the unfused one and that the fused model reproduces
`memory.profile` exactly.
"""
from __future__ import annotations

import heapq
from itertools import combinations
from typing import Sequence

from onnx2mcu.scheduler.problem import Problem, ancestors_descendants, is_topological

MAX_SCENARIO_INPUTS = 8


class Descriptor:
    __slots__ = ("In", "Out", "Prod", "T", "K", "sigma", "T0")

    def __init__(self, In, Out, Prod, T, K, sigma, T0):
        self.In = In  # list of groups
        self.Out = Out
        self.Prod = Prod  # groups created inside
        self.T = T
        self.K = K  # list of groups
        self.sigma = sigma
        self.T0 = T0  # T when run first: graph inputs nobody reads are live during its first op


class Fused:
    """A fused graph: super-nodes (lists of op indices) with exact descriptors."""

    def __init__(self, prob: Problem, nodes: list[list[int]], prologue: bool = False,
                 cache: dict | None = None):
        self.prob = prob
        self.nodes = nodes
        self.prologue = prologue  # node 0 is the prologue and runs first
        self.cache = {} if cache is None else cache  # tuple(ops) -> Descriptor | None
        self._index()

    # ----- structure -------------------------------------------------------
    def _index(self) -> None:
        prob = self.prob
        self.node_of = [0] * prob.n
        for v, ops in enumerate(self.nodes):
            for op in ops:
                self.node_of[op] = v
        m = len(self.nodes)
        self.preds = [set() for _ in range(m)]
        self.succs = [set() for _ in range(m)]
        for op in range(prob.n):
            v = self.node_of[op]
            for p in prob.preds[op]:
                u = self.node_of[p]
                if u != v:
                    self.preds[v].add(u)
                    self.succs[u].add(v)
        if self.prologue:
            for v in range(1, m):
                self.preds[v].add(0)
                self.succs[0].add(v)
        self.gprod = [None if p is None else self.node_of[p] for p in prob.prod]
        self.gcons = [sorted({self.node_of[c] for c in cons}) for cons in prob.cons]
        self.desc: list[Descriptor] = []
        for v, ops in enumerate(self.nodes):
            key = tuple(ops)
            d = self.cache.get(key)
            if d is None:
                d = self.cache[key] = describe(prob, ops)
            if d is None:  # cannot happen for single ops; merges check before they commit
                raise AssertionError(f"super-node {v} has no exact descriptor")
            self.desc.append(d)

    @property
    def m(self) -> int:
        return len(self.nodes)

    def expand(self, order: Sequence[int]) -> list[int]:
        return [op for v in order for op in self.nodes[v]]

    def topo_order(self) -> list[int]:
        """A topological order of the super-nodes, as close to the ops' file order as possible."""
        if not hasattr(self, "_topo"):
            key = [min(ops) if ops else -1 for ops in self.nodes]
            indeg = [len(p) for p in self.preds]
            heap = [(key[v], v) for v in range(self.m) if indeg[v] == 0]
            heapq.heapify(heap)
            order = []
            while heap:
                _, v = heapq.heappop(heap)
                order.append(v)
                for s in self.succs[v]:
                    indeg[s] -= 1
                    if indeg[s] == 0:
                        heapq.heappush(heap, (key[s], s))
            assert len(order) == self.m, "cycle among super-nodes"
            self._topo = order
        return self._topo

    def is_topological(self, order: Sequence[int]) -> bool:
        return is_topological(order, self.preds)

    # ----- evaluation ------------------------------------------------------
    def live_bytes(self, order: Sequence[int]) -> list[int]:
        """Live bytes at each super-node step (the max over its internal steps)."""
        n = len(order)
        if n == 0:
            return []
        prob = self.prob
        pos = [0] * self.m
        for t, v in enumerate(order):
            pos[v] = t
        diff = [0] * (n + 1)
        for g, size in enumerate(prob.sizes):
            p = self.gprod[g]
            first = 0 if p is None else pos[p] + 1
            if prob.is_out[g]:
                last = n - 1
            elif self.gcons[g]:
                last = max(pos[c] for c in self.gcons[g])
            else:
                last = -1  # unused graph input: inside T0 of the first node
            if last >= first:
                diff[first] += size
                diff[last + 1] -= size
        live = []
        acc = 0
        for t in range(n):
            acc += diff[t]
            live.append(acc)
        for t, v in enumerate(order):
            d = self.desc[v]
            live[t] += d.T0 if t == 0 else d.T
            if d.K and any(all(pos[c] < t for c in self.gcons[e] if c != v) for e in d.K):
                live[t] -= d.sigma
        return live

    def peak(self, order: Sequence[int]) -> int:
        return max(self.live_bytes(order), default=0)

    # ----- bounds ----------------------------------------------------------
    def closure(self) -> tuple[list[int], list[int]]:
        if not hasattr(self, "_anc"):
            self._anc, self._desc = ancestors_descendants(self.m, self.preds, self.topo_order())
        return self._anc, self._desc

    def cut_lower_bound(self) -> tuple[int, list[int]]:
        """max over nodes v of what must be live at v's step, and that bound per node.

        At v's step these are live whatever the order: v's inputs and T(v)
        (less its in-place saving if it may happen), every group made by an
        ancestor of v (or a graph input) that a descendant of v reads or that
        is a graph output.  Step 0 also holds every graph input.
        """
        prob = self.prob
        anc, desc = self.closure()
        cons_mask = [0] * len(prob.sizes)
        for g, cs in enumerate(self.gcons):
            mask = 0
            for c in cs:
                mask |= 1 << c
            cons_mask[g] = mask
        per_node = []
        for v in range(self.m):
            d = self.desc[v]
            total = sum(prob.sizes[g] for g in d.In) + d.T
            if d.K:
                for e in d.K:
                    if not any((desc[v] >> c) & 1 for c in self.gcons[e] if c != v):
                        total -= d.sigma
                        break
            ins = set(d.In)
            for g, size in enumerate(prob.sizes):
                if g in ins:
                    continue
                p = self.gprod[g]
                if p is not None and not (anc[v] >> p) & 1:
                    continue
                if prob.is_out[g] or cons_mask[g] & desc[v]:
                    total += size
            per_node.append(total)
        inputs = sum(prob.sizes[g] for g in range(len(prob.sizes)) if prob.is_in[g])
        return max(per_node + [inputs if self.m else 0], default=0), per_node

    def windows(self) -> tuple[list[int], list[int]]:
        """ASAP/ALAP step of every super-node: [#ancestors, m-1-#descendants]."""
        anc, desc = self.closure()
        return ([bin(a).count("1") for a in anc], [self.m - 1 - bin(d).count("1") for d in desc])


def describe(prob: Problem, ops: Sequence[int]) -> Descriptor | None:
    """Exact descriptor of the super-node running `ops` in this order, or None."""
    inside = set(ops)
    produced: dict[int, int] = {}
    last_read: dict[int, int] = {}
    for i, op in enumerate(ops):
        for g in prob.op_in[op]:
            last_read[g] = i
        for g in prob.op_new[op]:
            produced[g] = i
    In = [g for g in last_read if g not in produced]
    outside = {}
    for g in list(last_read) + list(produced):
        outside[g] = any(c not in inside for c in prob.cons[g])
    Out = [g for g in produced if outside[g] or prob.is_out[g]]
    sizes = prob.sizes
    in_bytes = sum(sizes[g] for g in In)
    dyn = [g for g in In if outside[g] and not prob.is_out[g]]

    if len(ops) == 1:
        op = ops[0]
        T = sum(sizes[g] for g in prob.op_new[op]) + prob.op_scratch[op]
        y = prob.op_out0[op]
        K: list[int] = []
        sigma = 0
        if y is not None:
            static = False
            for c in prob.op_cands[op]:
                if prob.is_out[c]:
                    continue
                if outside[c]:
                    K.append(c)
                else:
                    static = True
            if static:
                T -= sizes[y]
                K = []
            elif K:
                sigma = sizes[y]
        return Descriptor(In, Out, list(produced), T, K, sigma, T + prob.unused_input_bytes)

    if not produced and not any(prob.op_scratch[op] or prob.op_cands[op] for op in ops):
        # allocates nothing: every input is live at the first internal step, the maximum
        return Descriptor(In, Out, [], 0, [], 0, prob.unused_input_bytes)
    if len(dyn) > MAX_SCENARIO_INPUTS:
        return None

    def value(dead: frozenset, first: bool = False) -> int:
        best = None
        for i, op in enumerate(ops):
            mem = prob.op_scratch[op] + (prob.unused_input_bytes if first and i == 0 else 0)
            for g in In:
                if last_read[g] >= i or prob.is_out[g] or (outside[g] and g not in dead):
                    mem += sizes[g]
            for g, p in produced.items():
                if p <= i and (p == i or last_read.get(g, -1) >= i or outside[g] or prob.is_out[g]):
                    mem += sizes[g]
            y = prob.op_out0[op]
            if y is not None:
                for c in prob.op_cands[op]:
                    if prob.is_out[c] or last_read.get(c) != i:
                        continue
                    if outside[c] and not (c in dead and c not in produced):
                        continue
                    mem -= sizes[y]
                    break
            best = mem if best is None else max(best, mem)
        return best - in_bytes

    T = value(frozenset())
    single = {e: value(frozenset([e])) for e in dyn}
    K = [e for e in dyn if single[e] < T]
    sigma = 0
    if K:
        drops = {T - single[e] for e in K}
        if len(drops) != 1:
            return None
        sigma = drops.pop()
    # every scenario must fit T - sigma*[some member of K is dead]
    if len(dyn) > 1:
        for r in range(2, len(dyn) + 1):
            for combo in combinations(dyn, r):
                want = T - sigma if any(e in K for e in combo) else T
                if value(frozenset(combo)) != want:
                    return None
    return Descriptor(In, Out, list(produced), T, K, sigma, value(frozenset(), first=True))


# ----------------------------------------------------------------------------
def fuse(prob: Problem, rules: bool = True) -> Fused:
    """Apply R0 (always) and, if `rules`, R1/R2 until nothing changes."""
    nodes, prologue = _alias_merge(prob)
    cache: dict = {}
    split = []
    for v, ops in enumerate(nodes):
        d = cache[tuple(ops)] = describe(prob, ops)
        if d is None and not (prologue and v == 0):
            split.extend([op] for op in ops)  # keep the aliases as their own nodes
        else:
            split.append(ops)
    fused = Fused(prob, split, prologue, cache)
    if not rules:
        return fused
    return _chain_merge(fused)


def unfused(prob: Problem) -> Fused:
    return Fused(prob, [[i] for i in range(prob.n)], False)


def _alias_merge(prob: Problem) -> tuple[list[list[int]], bool]:
    """R0: alias ops join their input's producer (or a prologue for graph inputs)."""
    n = prob.n
    home = list(range(n))  # op -> the op it runs right after (itself if it starts a block)
    prologue_ops: list[int] = []
    in_prologue = [False] * n
    for i in range(n):
        if not prob.op_alias[i] or len(prob.op_in[i]) != 1 or len(prob.preds[i]) > 1:
            continue
        if not prob.preds[i]:
            prologue_ops.append(i)  # reads a graph input (possibly through earlier aliases)
            in_prologue[i] = True
            continue
        producer = next(iter(prob.preds[i]))
        if in_prologue[producer]:
            prologue_ops.append(i)
            in_prologue[i] = True
        else:
            home[i] = producer
    children: dict[int, list[int]] = {}
    for i in range(n):
        if home[i] != i:
            children.setdefault(home[i], []).append(i)

    def emit(op: int, out: list[int]) -> None:
        out.append(op)
        for child in children.get(op, []):
            emit(child, out)

    nodes: list[list[int]] = []
    if prologue_ops:
        nodes.append(list(prologue_ops))
    for i in range(n):
        if home[i] == i and not in_prologue[i]:
            block: list[int] = []
            emit(i, block)
            nodes.append(block)
    return nodes, bool(prologue_ops)


def _chain_merge(fused: Fused) -> Fused:
    """R1/R2 rounds.  Within one round the merges have disjoint neighbourhoods (no two
    touch a common group), so each one's conditions still hold after the others."""
    prob = fused.prob
    nodes = [list(ops) for ops in fused.nodes]
    prologue = fused.prologue
    sizes = prob.sizes
    cache = fused.cache
    f = fused
    while True:
        frozen: set[int] = set()
        merges: dict[int, list[int]] = {}
        dead: set[int] = set()
        for a in f.topo_order():
            if a in frozen or (prologue and a == 0) or len(f.succs[a]) != 1:
                continue
            b = next(iter(f.succs[a]))
            if b in frozen:
                continue
            da, db = f.desc[a], f.desc[b]
            hood = {a, b}
            for g in da.In + da.Prod + db.In + db.Prod:
                hood.update(f.gcons[g])
                if f.gprod[g] is not None:
                    hood.add(f.gprod[g])
            if hood & frozen:
                continue
            if any(prob.is_out[g] for g in da.Prod):
                continue
            if not _r1(f, a, b, sizes) and not _r2(f, a, b, sizes):
                continue
            ops = nodes[a] + nodes[b]
            key = tuple(ops)
            if key not in cache:
                cache[key] = describe(prob, ops)
            if cache[key] is None:
                continue
            merges[a] = ops
            dead.add(b)
            frozen |= hood
        if not merges:
            return f
        nodes = [merges.get(v, nodes[v]) for v in range(len(nodes)) if v not in dead]
        f = Fused(prob, nodes, prologue, cache)


def _r1(f: Fused, a: int, b: int, sizes: list[int]) -> bool:
    """Pull-up: B may run right after A (see module docstring)."""
    prob = f.prob
    da, db = f.desc[a], f.desc[b]
    if f.preds[b] != {a} or not all(f.gprod[g] == a for g in db.In):
        return False
    out_a = sum(sizes[g] for g in da.Out)
    out_b = sum(sizes[g] for g in db.Out)
    dst = sum(sizes[g] for g in da.In if not prob.is_out[g] and all(c == a for c in f.gcons[g]))
    rhs = da.T + dst
    if da.K:
        rhs = min(rhs, da.T - da.sigma + dst + min(sizes[e] for e in da.K))
    return out_b <= out_a and out_a + db.T <= rhs


def _r2(f: Fused, a: int, b: int, sizes: list[int]) -> bool:
    """Push-down: A may run right before B (see module docstring)."""
    prob = f.prob
    da, db = f.desc[a], f.desc[b]
    for g in da.In:
        for c in f.gcons[g]:
            if c != a and c != b and g in f.desc[c].K:
                return False
    b_in = set(db.In)
    i_prime = sum(sizes[g] for g in da.In if g not in b_in and not prob.is_out[g])
    out_a = sum(sizes[g] for g in da.Out)
    return i_prime <= out_a and i_prime + da.T <= out_a + db.T - (db.sigma if db.K else 0)
