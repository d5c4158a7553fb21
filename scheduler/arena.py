"""Arena planning: a byte offset for every buffer of a memory profile.

Buffers that are live at the same time must not overlap.  This module holds
the classic greedy-by-size planner (largest first, lowest offset that fits,
as TFLite Micro does); the scheduler issue adds more strategies behind the
same `plan_arena` entry point.
"""
from __future__ import annotations

from dataclasses import dataclass

from onnx2mcu.scheduler.memory_model import Buffer, MemoryProfile

ALIGNMENT = 16


def align(value: int, alignment: int = ALIGNMENT) -> int:
    return (value + alignment - 1) // alignment * alignment


@dataclass
class ArenaPlan:
    offsets: dict[int, int]  # buffer index -> byte offset
    arena_bytes: int
    method: str


def plan_arena(profile: MemoryProfile, alignment: int = ALIGNMENT) -> ArenaPlan:
    return greedy_by_size(profile.buffers, alignment)


def greedy_by_size(buffers: list[Buffer], alignment: int = ALIGNMENT) -> ArenaPlan:
    """Largest buffer first; each goes into the lowest gap among already placed, time-overlapping buffers."""
    placed: list[tuple[int, int, Buffer]] = []  # (offset, end, buffer)
    offsets: dict[int, int] = {}
    for buffer in sorted(buffers, key=lambda b: (-b.nbytes, b.first, b.index)):
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
    return ArenaPlan(offsets, arena, "greedy-by-size")


def check_plan(profile: MemoryProfile, plan: ArenaPlan) -> None:
    """Raise AssertionError if two buffers live at the same time share a byte."""
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
