"""Exact dynamic programming over sets of scheduled nodes (SERENITY-style).

The state is the set S of super-nodes already run (always a down-set of the
DAG); f(S) is the least possible peak over orders of S.  Appending v to S
costs  resident(S) + T(v) - sigma(v)*[in-place possible]  at v's step, where
resident(S) is what S leaves live; both only depend on S, which is what
makes the recursion exact.  It is exponential in the graph's width, so it
serves as the cross-check of the ILP and of fusion in the tests (graphs up
to ~25-30 nodes), not as the production method.
"""
from __future__ import annotations

from onnx2mcu.scheduler.fusion import Fused


def optimal(fused: Fused, max_states: int = 2_000_000) -> tuple[int, list[int]]:
    """(optimal peak, an optimal order of super-nodes).  Raises if the state space is too big."""
    prob = fused.prob
    m = fused.m
    if m == 0:
        return 0, []
    sizes = prob.sizes
    pred_mask = [sum(1 << p for p in fused.preds[v]) for v in range(m)]
    cons_mask = []
    for g in range(len(sizes)):
        mask = 0
        for c in fused.gcons[g]:
            mask |= 1 << c
        cons_mask.append(mask)
    is_out = prob.is_out
    # groups that outlive a node's step: read by another node, or graph outputs
    made = [[g for g in fused.desc[v].Prod if is_out[g] or cons_mask[g] & ~(1 << v)] for v in range(m)]
    reads = [fused.desc[v].In for v in range(m)]
    start = 0
    unused_inputs = 0
    for g in range(len(sizes)):
        if prob.is_in[g]:
            if is_out[g] or cons_mask[g]:
                start += sizes[g]
            else:
                unused_inputs += sizes[g]
    full = (1 << m) - 1
    # layer by layer (|S| = k): best peak and (resident, parent, node) per state
    layer = {0: (0, start)}
    parents: list[dict[int, tuple[int, int]]] = []
    states = 0
    for k in range(m):
        nxt: dict[int, tuple[int, int]] = {}
        back: dict[int, tuple[int, int]] = {}
        for S, (best, resident) in layer.items():
            for v in range(m):
                bit = 1 << v
                if S & bit or pred_mask[v] & ~S:
                    continue
                d = fused.desc[v]
                mem = resident + (d.T0 if S == 0 else d.T)
                if d.K:
                    for e in d.K:
                        if not cons_mask[e] & ~(S | bit):
                            mem -= d.sigma
                            break
                peak = best if best >= mem else mem
                T = S | bit
                old = nxt.get(T)
                if old is not None and old[0] <= peak:
                    continue
                res = resident
                for g in made[v]:
                    res += sizes[g]
                for g in reads[v]:
                    if not is_out[g] and not cons_mask[g] & ~T:
                        res -= sizes[g]
                nxt[T] = (peak, res)
                back[T] = (S, v)
        states += len(nxt)
        if states > max_states:
            raise OverflowError("too many states for the exact DP")
        parents.append(back)
        layer = nxt
    peak = layer[full][0]
    order = []
    S = full
    for k in range(m - 1, -1, -1):
        S, v = parents[k][S]
        order.append(v)
    order.reverse()
    return peak, order
