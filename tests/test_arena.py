"""Arena planning: no two live buffers share a byte, never below the aligned peak, exact when small."""
from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnx2mcu.memory import ALIGNMENT, Buffer, MemoryProfile, align
from onnx2mcu.scheduler.arena import (ArenaPlan, _Placer, _strategies, aligned_peak, check_plan,
                                      greedy_by_size, plan_arena)

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def profiles(draw, max_buffers: int = 12, max_steps: int = 10):
    n = draw(st.integers(1, max_buffers))
    buffers = []
    for i in range(n):
        first = draw(st.integers(0, max_steps - 1))
        last = draw(st.integers(first, min(max_steps - 1, first + draw(st.integers(0, max_steps)))))
        size = draw(st.sampled_from([0, 4, 16, 20, 32, 48, 64, 100, 128]))
        buffers.append(Buffer(i, size, first, last, [f"b{i}"]))
    steps = max(b.last for b in buffers) + 1
    live = [sum(b.nbytes for b in buffers if b.first <= t <= b.last) for t in range(steps)]
    return MemoryProfile([], buffers, {f"b{i}": i for i in range(n)}, live)


def _brute_force(buffers: list[Buffer]) -> int:
    """Optimal arena: every packing can be pushed down until each buffer rests on another or
    on 0; placing buffers in offset order then puts each right on top of the earlier ones."""
    live = [b for b in buffers if b.nbytes > 0]
    best = None
    for perm in itertools.permutations(live):
        placed: list[tuple[int, Buffer]] = []
        top = 0
        for b in perm:
            o = max((off + align(p.nbytes) for off, p in placed if p.overlaps_in_time(b)), default=0)
            placed.append((o, b))
            top = max(top, o + align(b.nbytes))
        best = top if best is None else min(best, top)
    return best or 0


@settings(max_examples=400, **SETTINGS)
@given(profiles())
def test_plans_are_valid_and_never_worse_than_greedy(prof):
    plan = plan_arena(prof, time_limit=5)
    check_plan(prof, plan)
    lower = aligned_peak(prof.buffers)
    assert plan.lower_bound == lower
    assert lower >= max(prof.live_bytes)
    assert plan.arena_bytes >= lower
    assert plan.arena_bytes <= greedy_by_size(prof.buffers).arena_bytes
    for buffer in prof.buffers:
        assert plan.offsets[buffer.index] % ALIGNMENT == 0
    placer = _Placer(prof.buffers, ALIGNMENT)
    for name, key in _strategies(prof.buffers, ALIGNMENT):
        other = placer.place(sorted(range(len(prof.buffers)), key=key), name)
        check_plan(prof, other)
        assert plan.arena_bytes <= other.arena_bytes


@settings(max_examples=150, **SETTINGS)
@given(profiles(max_buffers=6, max_steps=5))
def test_exact_planner_reaches_the_optimum_when_it_is_the_bound(prof):
    plan = plan_arena(prof, time_limit=10)
    best = _brute_force(prof.buffers)
    assert plan.arena_bytes >= best
    if best == aligned_peak(prof.buffers):
        assert plan.arena_bytes == best


@settings(max_examples=150, **SETTINGS)
@given(st.lists(st.sampled_from([16, 32, 64, 96, 160]), min_size=1, max_size=40))
def test_chain_arena_equals_peak(sizes):
    # a chain: buffer k lives over steps k-1..k (made by op k-1, read by op k)
    buffers = [Buffer(k, s, max(k - 1, 0), k, [f"b{k}"]) for k, s in enumerate(sizes)]
    steps = len(sizes)
    live = [sum(b.nbytes for b in buffers if b.first <= t <= b.last) for t in range(steps)]
    prof = MemoryProfile([], buffers, {}, live)
    plan = plan_arena(prof)
    check_plan(prof, plan)
    assert plan.arena_bytes == max(live)


def test_check_plan_catches_overlap():
    a = Buffer(0, 32, 0, 2, ["a"])
    b = Buffer(1, 32, 1, 3, ["b"])
    prof = MemoryProfile([], [a, b], {"a": 0, "b": 1}, [32, 64, 64, 32])
    bad = ArenaPlan({0: 0, 1: 16}, 48, "custom")
    try:
        check_plan(prof, bad)
    except AssertionError:
        pass
    else:
        raise AssertionError("overlap not detected")
    good = plan_arena(prof)
    check_plan(prof, good)
    assert good.arena_bytes == 64
