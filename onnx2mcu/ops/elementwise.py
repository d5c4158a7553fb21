"""Elementwise ops: unary activations and broadcasting binary arithmetic.

All run in place: the output may take the bytes of an input of the same
size that dies at this op.
"""
from __future__ import annotations

import math

import numpy as np

from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops.registry import ANY_SUPPORTED, FLOAT, INDEX, register

F32 = np.float32


def _unary(op_type: str, fn, dtypes=(FLOAT,)) -> None:
    def reference(node: Node, inputs: list) -> list:
        return [np.asarray(fn(node, inputs[0])).astype(inputs[0].dtype, copy=False)]

    register(op_type, reference, dtypes=dtypes, inplace_inputs=(0,))


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64))


def _gelu(node: Node, x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    if node.attr("approximate", "none") == "tanh":
        return 0.5 * x64 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x64 + 0.044715 * x64**3)))
    return 0.5 * x64 * (1.0 + _erf(x64 / math.sqrt(2.0)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return 1.0 / (1.0 + np.exp(-x64))


def _hard_sigmoid(node: Node, x: np.ndarray) -> np.ndarray:
    alpha, beta = node.attr("alpha", 0.2), node.attr("beta", 0.5)
    return np.clip(F32(alpha) * x + F32(beta), 0, 1)


def _clip(node: Node, inputs: list) -> list:
    x = inputs[0]
    lo = inputs[1] if len(inputs) > 1 and inputs[1] is not None else node.attr("min")
    hi = inputs[2] if len(inputs) > 2 and inputs[2] is not None else node.attr("max")
    out = x
    if lo is not None:
        out = np.maximum(out, np.asarray(lo, dtype=x.dtype))
    if hi is not None:
        out = np.minimum(out, np.asarray(hi, dtype=x.dtype))
    return [np.asarray(out, dtype=x.dtype)]


_unary("Relu", lambda n, x: np.maximum(x, 0))
_unary("Sigmoid", lambda n, x: _sigmoid(x))
_unary("Tanh", lambda n, x: np.tanh(x))
_unary("Erf", lambda n, x: _erf(x))
_unary("Gelu", _gelu)
_unary("HardSigmoid", _hard_sigmoid)
_unary("HardSwish", lambda n, x: x * np.clip(x / F32(6) + F32(0.5), 0, 1))
_unary("LeakyRelu", lambda n, x: np.where(x >= 0, x, x * F32(n.attr("alpha", 0.01))))
_unary("Sqrt", lambda n, x: np.sqrt(x))
_unary("Reciprocal", lambda n, x: F32(1) / x)
_unary("Exp", lambda n, x: np.exp(x))
_unary("Neg", lambda n, x: -x, dtypes=(FLOAT | INDEX,))
_unary("Abs", lambda n, x: np.abs(x), dtypes=(FLOAT | INDEX,))
_unary("Log", lambda n, x: np.log(x))
_unary("Floor", lambda n, x: np.floor(x))
_unary("Ceil", lambda n, x: np.ceil(x))
register("Clip", _clip, inplace_inputs=(0,))


# ----- binary ops with numpy broadcasting -------------------------------
def _binary(op_type: str, fn, dtypes=(FLOAT,), out_dtype=None) -> None:
    def reference(node: Node, inputs: list) -> list:
        a, b = inputs
        result = np.asarray(fn(a, b))
        return [result.astype(out_dtype or a.dtype, copy=False)]

    register(op_type, reference, dtypes=dtypes, inplace_inputs=() if out_dtype else (0, 1))


def _pow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # float64 intermediates keep x**2 and x**0.5 exact to the last float32 bit
    return np.power(a.astype(np.float64), b.astype(np.float64))


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)
    return a / b


_binary("Add", np.add, dtypes=(FLOAT | INDEX,))
_binary("Sub", np.subtract, dtypes=(FLOAT | INDEX,))
_binary("Mul", np.multiply, dtypes=(FLOAT | INDEX,))
_binary("Div", _div, dtypes=(FLOAT | INDEX,))
_binary("Pow", _pow)
_binary("Max", np.maximum)  # two-input form; variadic handled in Sum below
_binary("Equal", np.equal, dtypes=(FLOAT | INDEX | {DType.BOOL},), out_dtype=np.bool_)
_binary("Less", np.less, dtypes=(FLOAT | INDEX,), out_dtype=np.bool_)
_binary("Greater", np.greater, dtypes=(FLOAT | INDEX,), out_dtype=np.bool_)


def _sum(node: Node, inputs: list) -> list:
    total = inputs[0]
    for other in inputs[1:]:
        total = total + other
    return [np.asarray(total, dtype=inputs[0].dtype)]


register("Sum", _sum, inplace_inputs=(0,))


def _where(node: Node, inputs: list) -> list:
    cond, a, b = inputs
    return [np.where(cond, a, b).astype(a.dtype, copy=False)]


register("Where", _where, dtypes=(frozenset({DType.BOOL}), FLOAT | INDEX), inplace_inputs=(1, 2))


def _not(node: Node, inputs: list) -> list:
    return [np.logical_not(inputs[0])]


register("Not", _not, dtypes=(frozenset({DType.BOOL}),), inplace_inputs=(0,))


def _cast_check(node: Node, graph: Graph) -> str | None:
    to = node.attr("to")
    from onnx import TensorProto

    ok = {TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL}
    return None if to in ok else f"Cast to type {to} not supported"


def _cast(node: Node, inputs: list) -> list:
    from onnx import helper

    return [inputs[0].astype(helper.tensor_dtype_to_np_dtype(node.attr("to")))]


register("Cast", _cast, dtypes=(ANY_SUPPORTED,), check=_cast_check)
