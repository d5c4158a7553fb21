"""Arena planning: a byte offset for every buffer of a memory profile.

Buffers that are live at the same time must not overlap.  Offsets are
multiples of `ALIGNMENT`, so a buffer effectively takes its size rounded up;
the *aligned peak* (max over steps of the rounded sizes of the live buffers)
is therefore a lower bound on any arena, and equals the peak when sizes are
multiples of the alignment.

`plan_arena` tries several greedy strategies (each places buffers one by one
in a priority order, into the best-fitting gap among the time-overlapping
buffers already placed), then randomised priorities, and keeps the smallest
arena; if a gap to the aligned peak remains and the problem is small, an
exact offset ILP closes it (or proves the greedy optimal for the offsets).
`greedy_by_size` alone is the classic planner (TFLite Micro's, Pisarchyk &
Lee's greedy by size), kept as the baseline.

Pinned buffers (shrinking in place, onnx2mcu/memory.py): a buffer with `pinned_to` must
start where that buffer starts.  Every planner places a pinned group (the buffers joined by
pins; their lifetimes follow one another) as one unit: an offset where each member fits
beside the already placed buffers it is live with (`_unit_offset`); the offset ILP adds the
equalities.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

import numpy as np

from onnx2mcu.memory import ALIGNMENT, Buffer, MemoryProfile, align

EXACT_MAX_PAIRS = 6000  # offset ILP only for this many overlapping buffer pairs


@dataclass
class ArenaPlan:
    offsets: dict[int, int]  # buffer index -> byte offset
    arena_bytes: int
    method: str
    lower_bound: int = 0  # aligned peak: no plan can be smaller


def pin_units(buffers: list[Buffer]) -> list[list[int]]:
    """Positions in `buffers` grouped by pins (each group in position order; most are alone)."""
    where = {b.index: i for i, b in enumerate(buffers)}
    root = list(range(len(buffers)))

    def find(i: int) -> int:
        while root[i] != i:
            i = root[i]
        return i

    for i, b in enumerate(buffers):
        if b.pinned_to is not None and b.pinned_to in where:
            root[find(i)] = find(where[b.pinned_to])
    groups: dict[int, list[int]] = {}
    for i in range(len(buffers)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def _unit_offset(members: list[tuple[int, int, int]], placed: list[tuple[int, int, int, int]]) -> int:
    """The best-fitting offset for buffers (size, first, last) that must share one offset, among
    placed buffers (offset, size, first, last): the lowest offset of the tightest free range
    (as the single-buffer placer's best gap), else the top of the used bytes.  An offset o is
    free when, for every member and every placed buffer live with it, [o, o + size) misses it."""
    forbidden = []  # open ranges of o
    for size, first, last in members:
        if size == 0 or last < first:
            continue
        for offset, psize, pfirst, plast in placed:
            if psize and pfirst <= last and first <= plast and pfirst <= plast:
                forbidden.append((offset - size, offset + psize))
    forbidden.sort()
    cursor, best, best_width = 0, None, None
    for lo, hi in forbidden:
        if lo >= cursor and (best_width is None or lo - cursor < best_width):
            best, best_width = cursor, lo - cursor
        cursor = max(cursor, hi)
    return best if best is not None else cursor


def aligned_peak(buffers: list[Buffer], alignment: int = ALIGNMENT) -> int:
    if not buffers:
        return 0
    steps = max(b.last for b in buffers) + 2
    diff = [0] * (steps + 1)
    for b in buffers:
        if b.nbytes > 0:
            diff[b.first] += align(b.nbytes, alignment)
            diff[b.last + 1] -= align(b.nbytes, alignment)
    best = acc = 0
    for d in diff:
        acc += d
        best = max(best, acc)
    return best


def plan_arena(profile: MemoryProfile, alignment: int = ALIGNMENT, time_limit: float = 5.0,
               exact: bool = True, seed: int = 0) -> ArenaPlan:
    """The best plan over several strategies; exact offset search when small."""
    deadline = time.perf_counter() + time_limit
    buffers = profile.buffers
    target = aligned_peak(buffers, alignment)
    planner = _Placer(buffers, alignment)
    best: ArenaPlan | None = None
    for name, key in _strategies(buffers, alignment):
        plan = planner.place(sorted(range(len(buffers)), key=key), name)
        if best is None or plan.arena_bytes < best.arena_bytes:
            best = plan
        if best.arena_bytes <= target:
            break
    rng = random.Random(seed)
    sizes = [align(b.nbytes, alignment) for b in buffers]
    tries = 0
    random_until = time.perf_counter() + min(1.0, 0.1 * time_limit)
    while best.arena_bytes > target and time.perf_counter() < random_until and tries < 200:
        tries += 1
        noise = [s * (1 + 0.3 * rng.random()) for s in sizes]
        order = sorted(range(len(buffers)), key=lambda i: -noise[i])
        plan = planner.place(order, "randomised greedy")
        if plan.arena_bytes < best.arena_bytes:
            best = plan
    if exact and best.arena_bytes > target and time.perf_counter() < deadline:
        plan = _exact_offsets(buffers, alignment, best, target, deadline - time.perf_counter())
        if plan is not None and plan.arena_bytes <= best.arena_bytes:
            best = plan
    best.lower_bound = target
    return best


def _strategies(buffers: list[Buffer], alignment: int):
    size = [align(b.nbytes, alignment) for b in buffers]
    length = [b.last - b.first + 1 for b in buffers]
    if buffers:
        steps = max(b.last for b in buffers) + 1
        live = np.zeros(steps + 1, dtype=np.int64)
        for b, s in zip(buffers, size):
            live[b.first] += s
            live[b.last + 1] -= s
        live = np.cumsum(live)[:steps]
        breadth = [int(live[b.first:b.last + 1].max()) if b.last >= b.first else 0 for b in buffers]
        conflict = _conflicts(buffers, size)
    else:
        breadth = conflict = []
    yield "greedy-by-size", lambda i: (-size[i], buffers[i].first, i)
    yield "greedy-by-breadth", lambda i: (-breadth[i], -size[i], buffers[i].first, i)
    yield "greedy-by-size-lifetime", lambda i: (-size[i], -length[i], i)
    yield "greedy-by-conflicts", lambda i: (-conflict[i], -size[i], i)
    yield "greedy-by-area", lambda i: (-size[i] * length[i], i)
    yield "greedy-by-lifetime", lambda i: (-length[i], -size[i], i)
    yield "first-fit-by-start", lambda i: (buffers[i].first, -size[i], i)


def _conflicts(buffers: list[Buffer], size: list[int]) -> list[int]:
    first = np.array([b.first for b in buffers])
    last = np.array([b.last for b in buffers])
    sz = np.array(size)
    out = []
    for b in buffers:
        mask = (first <= b.last) & (last >= b.first)
        out.append(int(sz[mask].sum()))
    return out


class _Placer:
    """Places buffers in a given priority order, each at the best-fitting free gap (a pinned
    group as one unit, when its first member comes up)."""

    def __init__(self, buffers: list[Buffer], alignment: int):
        self.buffers = buffers
        self.alignment = alignment
        self.first = np.array([b.first for b in buffers], dtype=np.int64)
        self.last = np.array([b.last for b in buffers], dtype=np.int64)
        self.size = np.array([align(b.nbytes, alignment) for b in buffers], dtype=np.int64)
        self.unit: dict[int, list[int]] = {}
        for members in pin_units(buffers):
            if len(members) > 1:
                for i in members:
                    self.unit[i] = members

    def place(self, priority: list[int], name: str, fixed: dict[int, int] | None = None) -> ArenaPlan:
        """`fixed`: position in `buffers` -> offset of buffers already placed."""
        n = len(self.buffers)
        offset = np.zeros(n, dtype=np.int64)
        placed = np.zeros(n, dtype=bool)
        arena = 0
        first, last, size = self.first, self.last, self.size
        for i, o in (fixed or {}).items():
            offset[i] = o
            placed[i] = True
            arena = max(arena, o + int(size[i]))
        for i in priority:
            if placed[i]:
                continue
            if i in self.unit:
                arena = max(arena, self._place_unit(self.unit[i], offset, placed))
                continue
            s = int(size[i])
            if s == 0:
                placed[i] = True
                continue
            mask = placed & (first <= last[i]) & (last >= first[i]) & (first <= last)
            idx = np.flatnonzero(mask)
            chosen = None
            if len(idx):
                starts = offset[idx]
                ends = starts + size[idx]
                order = np.argsort(starts, kind="stable")
                cursor = 0
                best_gap = None
                for k in order:
                    st = int(starts[k])
                    if st - cursor >= s and (best_gap is None or st - cursor < best_gap):
                        best_gap = st - cursor
                        chosen = cursor
                    cursor = max(cursor, int(ends[k]))
                if chosen is None:
                    chosen = cursor
            else:
                chosen = 0
            offset[i] = chosen
            placed[i] = True
            arena = max(arena, chosen + s)
        offsets = {self.buffers[i].index: int(offset[i]) for i in range(n)}
        return ArenaPlan(offsets, int(arena), name)

    def _place_unit(self, members: list[int], offset: np.ndarray, placed: np.ndarray) -> int:
        """Place a pinned group at one offset; returns the end of its largest member."""
        fixed = [int(offset[i]) for i in members if placed[i]]
        if fixed:  # a member came fixed (the offset ILP places whole groups): join it
            chosen = fixed[0]
        else:
            others = [(int(offset[j]), int(self.size[j]), int(self.first[j]), int(self.last[j]))
                      for j in np.flatnonzero(placed)]
            chosen = _unit_offset([(int(self.size[i]), int(self.first[i]), int(self.last[i]))
                                   for i in members], others)
        for i in members:
            offset[i] = chosen
            placed[i] = True
        return chosen + max(int(self.size[i]) for i in members)


def greedy_by_size(buffers: list[Buffer], alignment: int = ALIGNMENT) -> ArenaPlan:
    """Largest buffer first; each goes into the lowest-waste gap among already placed, time-overlapping buffers."""
    placed: list[tuple[int, int, Buffer]] = []  # (offset, end, buffer)
    offsets: dict[int, int] = {}
    unit = {}
    for members in pin_units(buffers):
        for i in members:
            unit[buffers[i].index] = [buffers[j] for j in members]
    for buffer in sorted(buffers, key=lambda b: (-b.nbytes, b.first, b.index)):
        if buffer.index in offsets:
            continue
        if len(unit[buffer.index]) > 1:
            group = unit[buffer.index]
            chosen = _unit_offset([(align(b.nbytes, alignment), b.first, b.last) for b in group],
                                  [(o, e - o, other.first, other.last) for o, e, other in placed])
            for b in group:
                offsets[b.index] = chosen
                if align(b.nbytes, alignment):
                    placed.append((chosen, chosen + align(b.nbytes, alignment), b))
            continue
        size = align(buffer.nbytes, alignment)
        if size == 0:
            offsets[buffer.index] = 0
            continue
        busy = sorted((o, e) for o, e, other in placed if other.overlaps_in_time(buffer))
        offset = 0
        best = None
        for start, end in busy:
            if start - offset >= size and (best is None or start - offset < best[1]):
                best = (offset, start - offset)
            offset = max(offset, end)
        chosen = best[0] if best is not None else offset
        offsets[buffer.index] = chosen
        placed.append((chosen, chosen + size, buffer))
    arena = max((end for _, end, _ in placed), default=0)
    return ArenaPlan(offsets, arena, "greedy-by-size", aligned_peak(buffers, alignment))


def _exact_offsets(buffers: list[Buffer], alignment: int, start: ArenaPlan, target: int,
                   time_limit: float) -> ArenaPlan | None:
    """Offset ILP: o_b + size_b <= o_c or o_c + size_c <= o_b for buffers live together.

    Solved as a feasibility problem with the arena capped at the lower bound
    (a tight cap is also the tightest big-M, which is what makes it fast).
    Staged: first only the buffers live at the tightest steps, the others then
    placed greedily around them; if that fails, more buffers go into the ILP,
    up to all of them.
    """
    deadline = time.perf_counter() + time_limit
    nonzero = [i for i, b in enumerate(buffers) if b.nbytes > 0]
    if not nonzero:
        return None
    unit = 0
    for i in nonzero:
        unit = math.gcd(unit, align(buffers[i].nbytes, alignment))
    steps = max(b.last for b in buffers) + 1
    live = np.zeros(steps + 1, dtype=np.int64)
    for i in nonzero:
        b = buffers[i]
        live[b.first] += align(b.nbytes, alignment)
        live[b.last + 1] -= align(b.nbytes, alignment)
    live = np.cumsum(live)[:steps]
    placer = _Placer(buffers, alignment)
    sizes = placer.size
    units = [members for members in pin_units(buffers) if len(members) > 1]
    tried = set()
    for frac in (1.0, 0.9, 0.75, 0.0):
        if time.perf_counter() > deadline - 0.05:
            break
        tight = live >= frac * target
        chosen = {i for i in nonzero if tight[buffers[i].first:buffers[i].last + 1].any()}
        for members in units:  # a pinned group goes into the ILP whole
            if chosen.intersection(members):
                chosen.update(i for i in members if buffers[i].nbytes > 0)
        chosen = sorted(chosen)
        key = tuple(chosen)
        if key in tried:
            continue
        tried.add(key)
        sub = [buffers[i] for i in chosen]
        pairs = [(a, b) for k, a in enumerate(sub) for b in sub[k + 1:] if a.overlaps_in_time(b)]
        if len(pairs) > EXACT_MAX_PAIRS:
            break
        pins = [(b.index, b.pinned_to) for b in sub if b.pinned_to is not None]
        offsets, status = _offsets_with_cap(sub, pairs, alignment, unit, target,
                                            deadline - time.perf_counter(), pins)
        if offsets is None:
            if status == "Infeasible":
                return None  # a subset does not fit under the bound, so neither does the whole
            continue
        where = {b.index: i for i, b in enumerate(buffers)}
        fixed = {where[idx]: o for idx, o in offsets.items()}
        rest = [i for i in range(len(buffers)) if i not in fixed]
        for order in (sorted(rest, key=lambda i: (-sizes[i], buffers[i].first)),
                      sorted(rest, key=lambda i: (buffers[i].first, -sizes[i]))):
            plan = placer.place(order, "exact offsets (ILP)" if frac == 0.0 else
                                "exact offsets (ILP) + greedy", fixed)
            if plan.arena_bytes <= target:
                _check([b for b in buffers if b.nbytes > 0], plan)
                return plan
    return None


def _offsets_with_cap(live: list[Buffer], pairs, alignment: int, unit: int, cap: int,
                      time_limit: float, pins=()):
    import pulp

    from onnx2mcu.scheduler.ilp import HIGHS_THREADS, _HiGHS, _quiet_stdout, _var

    c = cap // unit
    lp = pulp.LpProblem("offsets", pulp.LpMinimize)
    o = {}
    for b in live:
        s = align(b.nbytes, alignment) // unit
        o[b.index] = _var(lp, f"o_{b.index}", lowBound=0, upBound=c - s, cat="Integer")
    lp += pulp.lpSum([])
    for a, b in pairs:
        sa, sb = align(a.nbytes, alignment) // unit, align(b.nbytes, alignment) // unit
        z = _var(lp, f"z_{a.index}_{b.index}", cat="Binary")
        lp += o[a.index] + sa <= o[b.index] + c * (1 - z)
        lp += o[b.index] + sb <= o[a.index] + c * z
    for a, b in pins:  # shrinking in place: the same offset (onnx2mcu/memory.py)
        if a in o and b in o:
            lp += o[a] == o[b]
    sol = _HiGHS(msg=False, timeLimit=max(time_limit, 0.05), threads=HIGHS_THREADS)
    with _quiet_stdout():
        lp.solve(sol)
    if sol.model_status != "Optimal" or any(v.varValue is None for v in o.values()):
        return None, sol.model_status
    return {idx: int(round(v.varValue)) * unit for idx, v in o.items()}, "Optimal"


def _check(buffers: list[Buffer], plan: ArenaPlan) -> None:
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            if a.overlaps_in_time(b):
                oa, ob = plan.offsets[a.index], plan.offsets[b.index]
                assert oa + a.nbytes <= ob or ob + b.nbytes <= oa
    _check_pins(buffers, plan)


def _check_pins(buffers: list[Buffer], plan: ArenaPlan) -> None:
    """A pinned buffer starts where its pin does and fits inside it (onnx2mcu/memory.py)."""
    by_index = {b.index: b for b in buffers}
    for b in buffers:
        if b.pinned_to is None or b.pinned_to not in by_index:
            continue
        pin = by_index[b.pinned_to]
        assert plan.offsets[b.index] == plan.offsets[pin.index], (
            f"{b.label} at {plan.offsets[b.index]} is pinned to {pin.label} at {plan.offsets[pin.index]}")
        assert b.nbytes <= pin.nbytes and pin.last < b.first, (
            f"{b.label} ({b.nbytes} B from step {b.first}) does not fit in {pin.label} "
            f"({pin.nbytes} B to step {pin.last})")


def check_plan(profile: MemoryProfile, plan: ArenaPlan) -> None:
    """Raise AssertionError if two buffers live at the same time share a byte, or a pinned
    buffer is not at its pin's offset."""
    spans = [(plan.offsets[b.index], plan.offsets[b.index] + b.nbytes, b) for b in profile.buffers
             if b.nbytes > 0]
    spans.sort(key=lambda s: s[0])
    for i, (start, end, buffer) in enumerate(spans):
        assert end <= plan.arena_bytes, f"{buffer.label} ends past the arena"
        for other_start, other_end, other in spans[i + 1:]:
            if other_start >= end:
                break
            assert not buffer.overlaps_in_time(other), (
                f"{buffer.label} [{start},{end}) and {other.label} [{other_start},{other_end}) "
                f"overlap in the arena while both live")
    _check_pins(profile.buffers, plan)
