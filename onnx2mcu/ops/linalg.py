"""Matrix products: MatMul (numpy broadcasting semantics) and Gemm."""
from __future__ import annotations

import numpy as np

from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops.registry import register


def _matmul(node: Node, inputs: list) -> list:
    a, b = inputs[0], inputs[1]
    return [np.matmul(a, b).astype(a.dtype, copy=False)]


def _matmul_macs(node: Node, graph: Graph) -> int:
    a = graph.tensors[node.inputs[0]]
    out = graph.tensors[node.outputs[0]]
    return out.numel * a.shape[-1]


register("MatMul", _matmul, macs=_matmul_macs)
