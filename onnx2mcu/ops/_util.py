"""Small helpers shared by the op family modules (attribute/input decoding)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from onnx2mcu.ir import Graph, Node


def input_or_none(inputs: list, index: int):
    """The array at `index`, or None when the input is omitted or absent."""
    return inputs[index] if len(inputs) > index and inputs[index] is not None else None


def int_list(value) -> list[int] | None:
    """An attribute or a 1-D int tensor as a list of Python ints (None stays None)."""
    if value is None:
        return None
    return [int(v) for v in np.asarray(value).reshape(-1)]


def ints_from(node: Node, inputs: list, index: int, attr: str) -> list[int] | None:
    """Ints given as input `index` (newer opsets) or as attribute `attr` (older ones)."""
    value = input_or_none(inputs, index)
    if value is not None:
        return int_list(value)
    return int_list(node.attr(attr))


def norm_axis(axis: int, rank: int) -> int:
    if not -max(rank, 1) <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def norm_axes(axes: Sequence[int], rank: int) -> tuple[int, ...]:
    return tuple(sorted({norm_axis(int(a), rank) for a in axes}))


def const_input(node: Node, graph: Graph, index: int) -> np.ndarray | None:
    """Value of input `index` when it is a compile-time constant, else None."""
    if len(node.inputs) <= index or not node.inputs[index]:
        return None
    return graph.tensors[node.inputs[index]].data


def has_input(node: Node, index: int) -> bool:
    return len(node.inputs) > index and bool(node.inputs[index])


def has_output(node: Node, index: int) -> bool:
    return len(node.outputs) > index and bool(node.outputs[index])


def f32(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float32)


def f64(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)
