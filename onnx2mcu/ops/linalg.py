"""Matrix products: MatMul (numpy broadcasting semantics, 1-D operands too) and Gemm."""
from __future__ import annotations

import numpy as np

from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops._util import input_or_none
from onnx2mcu.ops.registry import FLOAT, INDEX, register


def _matmul(node: Node, inputs: list) -> list:
    a, b = inputs[0], inputs[1]
    if a.dtype.kind == "f":
        # float64 accumulation: the result does not depend on BLAS summation order
        return [np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)]
    return [np.matmul(a, b).astype(a.dtype, copy=False)]


def _matmul_macs(node: Node, graph: Graph) -> int:
    a = graph.tensors[node.inputs[0]]
    out = graph.tensors[node.outputs[0]]
    return out.numel * (a.shape[-1] if a.shape else 1)


register("MatMul", _matmul, dtypes=(FLOAT | INDEX,), macs=_matmul_macs)


def _gemm(node: Node, inputs: list) -> list:
    a = inputs[0].astype(np.float64)
    b = inputs[1].astype(np.float64)
    c = input_or_none(inputs, 2)
    if node.attr("transA", 0):
        a = a.T
    if node.attr("transB", 0):
        b = b.T
    y = node.attr("alpha", 1.0) * (a @ b)
    if c is not None:
        y = y + node.attr("beta", 1.0) * c.astype(np.float64)
    return [y.astype(inputs[0].dtype)]


def _gemm_macs(node: Node, graph: Graph) -> int:
    a = graph.tensors[node.inputs[0]]
    out = graph.tensors[node.outputs[0]]
    k = a.shape[0] if node.attr("transA", 0) else a.shape[1]
    return out.numel * k


register("Gemm", _gemm, dtypes=(FLOAT,), macs=_gemm_macs)
