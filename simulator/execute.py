"""Run the IR in a schedule's order over one byte arena laid out by its plan.

Every activation lives at its planned offset in a single numpy byte array,
so a planning bug (two live tensors sharing bytes) corrupts results exactly
as it would on the device.  The numpy references compute each op; their
outputs are then written into the arena.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from onnx2mcu.errors import UserError
from onnx2mcu.ir import DType, Graph
from onnx2mcu.ops.registry import run_reference
from onnx2mcu.scheduler import Schedule


@dataclass
class SimResult:
    outputs: dict[str, np.ndarray]
    live_bytes: list[int]
    peak_bytes: int
    peak_step: int
    live_at_peak: list[str]
    arena_bytes: int


class Arena:
    """Typed views of tensors at their planned offsets in one byte array."""

    def __init__(self, graph: Graph, sched: Schedule):
        self.graph = graph
        self.sched = sched
        self.bytes = np.zeros(max(sched.arena_bytes, 1), dtype=np.uint8)

    def view(self, name: str) -> np.ndarray:
        tensor = self.graph.tensors[name]
        if tensor.is_const:
            return tensor.data
        buffer = self.sched.profile.buffer_of[name]
        offset = self.sched.plan.offsets[buffer]
        raw = self.bytes[offset: offset + tensor.nbytes]
        shape = tensor.shape
        if tensor.dtype is DType.BIT:  # packed words along the last axis
            shape = tuple(shape[:-1]) + ((shape[-1] + 31) // 32,) if shape else (1,)
        return raw.view(tensor.dtype.numpy).reshape(shape)


def simulate(graph: Graph, sched: Schedule, inputs: Mapping[str, np.ndarray],
             progress: Callable[[int], None] | None = None) -> SimResult:
    arena = Arena(graph, sched)
    for name in graph.inputs:
        if name not in inputs:
            raise UserError(f"no value given for input '{name}'")
        tensor = graph.tensors[name]
        value = np.asarray(inputs[name])
        if value.shape != tensor.shape:
            raise UserError(f"input '{name}' has shape {list(value.shape)}, the model expects "
                            f"{list(tensor.shape)}")
        arena.view(name)[...] = value.astype(tensor.dtype.numpy, copy=False)
    for step, node in enumerate(sched.order):
        args = [arena.view(n) if n else None for n in node.inputs]
        # snapshot inputs: an in-place op's output shares their bytes
        args = [np.array(a, copy=True) if a is not None else None for a in args]
        results = run_reference(node, args, graph)  # with the node's prepared Params
        for out, value in zip(node.outputs, results):
            if not out or graph.tensors[out].is_const:
                continue
            target = arena.view(out)
            value = np.asarray(value)
            if value.shape != target.shape:
                raise AssertionError(f"{node.name} ({node.op_type}): reference gave shape "
                                     f"{value.shape} for '{out}', shape inference said {target.shape}")
            target[...] = value  # for an alias this rewrites the same bytes
        if progress is not None:
            progress(step)
    prof = sched.profile
    peak_step = prof.peak_step
    live = sorted(prof.live_at(peak_step), key=lambda b: -b.nbytes)
    return SimResult(
        outputs={name: np.array(arena.view(name), copy=True) for name in graph.outputs},
        live_bytes=list(prof.live_bytes),
        peak_bytes=prof.peak_bytes,
        peak_step=peak_step,
        live_at_peak=[b.label for b in live],
        arena_bytes=sched.arena_bytes,
    )
