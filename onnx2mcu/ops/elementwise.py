"""Elementwise ops: unary activations and math, broadcasting binary arithmetic,
comparisons and logic, variadic Sum/Mean/Max/Min, Where, Cast.

Ops whose output has the dtype of an input run in place: the output may take
the bytes of an input of the same size and dtype that dies at this op (the
memory model checks size and dtype).
"""
from __future__ import annotations

import math

import numpy as np

from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops._util import input_or_none
from onnx2mcu.ops.registry import ANY_SUPPORTED, BOOL, FLOAT, INDEX, INTEGER, NUMERIC, register

F32 = np.float32
VARIADIC = tuple(range(16))  # "any input position" for variadic in-place ops


def _unary(op_type: str, fn, dtypes=(FLOAT,)) -> None:
    def reference(node: Node, inputs: list) -> list:
        x = inputs[0]
        with np.errstate(all="ignore"):
            return [np.asarray(fn(node, x)).astype(x.dtype, copy=False)]

    register(op_type, reference, dtypes=dtypes, inplace_inputs=(0,))


_erf_scalar = np.frompyfunc(math.erf, 1, 1)


def _erf(x: np.ndarray) -> np.ndarray:
    return _erf_scalar(np.asarray(x, dtype=np.float64)).astype(np.float64)


def _d(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _gelu(node: Node, x: np.ndarray) -> np.ndarray:
    x64 = _d(x)
    if node.attr("approximate", "none") == "tanh":
        return 0.5 * x64 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x64 + 0.044715 * x64**3)))
    return 0.5 * x64 * (1.0 + _erf(x64 / math.sqrt(2.0)))


def _gelu_check(node: Node, graph: Graph) -> str | None:
    mode = node.attr("approximate", "none")
    return None if mode in ("none", "tanh") else f"Gelu approximate='{mode}' not supported"


def _sigmoid(x) -> np.ndarray:
    x64 = _d(x)
    return np.exp(-np.logaddexp(0.0, -x64))


def _softplus(x) -> np.ndarray:
    return np.logaddexp(0.0, _d(x))


def _hard_sigmoid(node: Node, x: np.ndarray) -> np.ndarray:
    alpha, beta = F32(node.attr("alpha", 0.2)), F32(node.attr("beta", 0.5))
    return np.clip(alpha * x + beta, F32(0), F32(1))


def _elu(node: Node, x: np.ndarray) -> np.ndarray:
    x64 = _d(x)
    return np.where(x64 > 0, x64, node.attr("alpha", 1.0) * np.expm1(x64))


def _selu(node: Node, x: np.ndarray) -> np.ndarray:
    alpha = node.attr("alpha", 1.67326319217681884765625)
    gamma = node.attr("gamma", 1.05070102214813232421875)
    x64 = _d(x)
    return gamma * np.where(x64 > 0, x64, alpha * np.expm1(x64))


def _celu(node: Node, x: np.ndarray) -> np.ndarray:
    alpha = node.attr("alpha", 1.0)
    x64 = _d(x)
    return np.maximum(x64, 0) + np.minimum(0, alpha * np.expm1(x64 / alpha))


def _shrink(node: Node, x: np.ndarray) -> np.ndarray:
    lambd, bias = F32(node.attr("lambd", 0.5)), F32(node.attr("bias", 0.0))
    return np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, 0))


def _is_inf(node: Node, x: np.ndarray) -> np.ndarray:
    pos, neg = node.attr("detect_positive", 1), node.attr("detect_negative", 1)
    return (np.isposinf(x) & bool(pos)) | (np.isneginf(x) & bool(neg))


_unary("Relu", lambda n, x: np.maximum(x, 0), dtypes=(FLOAT | INTEGER,))
_unary("Sigmoid", lambda n, x: _sigmoid(x))
_unary("Tanh", lambda n, x: np.tanh(_d(x)))
_unary("Erf", lambda n, x: _erf(x))
register("Gelu", lambda n, i: [_gelu(n, i[0]).astype(i[0].dtype)], inplace_inputs=(0,),
         check=_gelu_check)
_unary("HardSigmoid", _hard_sigmoid)
_unary("HardSwish", lambda n, x: x * np.clip(x * F32(1 / 6) + F32(0.5), F32(0), F32(1)))
_unary("LeakyRelu", lambda n, x: np.where(x >= 0, x, x * F32(n.attr("alpha", 0.01))))
_unary("Elu", _elu)
_unary("Selu", _selu)
_unary("Celu", _celu)
_unary("Softplus", lambda n, x: _softplus(x))
_unary("Softsign", lambda n, x: x / (F32(1) + np.abs(x)))
_unary("Mish", lambda n, x: _d(x) * np.tanh(_softplus(x)))
_unary("Swish", lambda n, x: _d(x) * _sigmoid(n.attr("alpha", 1.0) * _d(x)))
_unary("ThresholdedRelu", lambda n, x: np.where(x > F32(n.attr("alpha", 1.0)), x, 0))
_unary("Shrink", _shrink, dtypes=(FLOAT,))
_unary("Sqrt", lambda n, x: np.sqrt(x))
_unary("Reciprocal", lambda n, x: F32(1) / x)
_unary("Exp", lambda n, x: np.exp(_d(x)))
_unary("Log", lambda n, x: np.log(x))
_unary("Neg", lambda n, x: -x, dtypes=(FLOAT | INTEGER,))
_unary("Abs", lambda n, x: np.abs(x), dtypes=(FLOAT | INTEGER,))
_unary("Sign", lambda n, x: np.sign(x), dtypes=(FLOAT | INTEGER,))
_unary("Floor", lambda n, x: np.floor(x))
_unary("Ceil", lambda n, x: np.ceil(x))
_unary("Round", lambda n, x: np.round(x))  # half to even, as ONNX specifies
for _name, _fn in (("Sin", np.sin), ("Cos", np.cos), ("Tan", np.tan), ("Asin", np.arcsin),
                   ("Acos", np.arccos), ("Atan", np.arctan), ("Sinh", np.sinh), ("Cosh", np.cosh),
                   ("Asinh", np.arcsinh), ("Acosh", np.arccosh), ("Atanh", np.arctanh)):
    _unary(_name, lambda n, x, fn=_fn: fn(_d(x)))


def _predicate(op_type: str, fn) -> None:
    register(op_type, lambda n, i: [np.asarray(fn(n, i[0]), dtype=np.bool_)], dtypes=(FLOAT,))


_predicate("IsNaN", lambda n, x: np.isnan(x))
_predicate("IsInf", _is_inf)


def _clip(node: Node, inputs: list) -> list:
    x = inputs[0]
    lo = input_or_none(inputs, 1)
    hi = input_or_none(inputs, 2)
    lo = node.attr("min") if lo is None else lo  # opset < 11 attributes
    hi = node.attr("max") if hi is None else hi
    out = x
    if lo is not None:
        out = np.maximum(out, np.asarray(lo, dtype=x.dtype))
    if hi is not None:  # min > max gives max everywhere, as ONNX says
        out = np.minimum(out, np.asarray(hi, dtype=x.dtype))
    return [np.asarray(out, dtype=x.dtype)]


register("Clip", _clip, dtypes=(NUMERIC,), inplace_inputs=(0,))


# ----- binary ops with numpy broadcasting -------------------------------
def _binary(op_type: str, fn, dtypes=(FLOAT,), out_dtype=None, inplace=(0, 1)) -> None:
    def reference(node: Node, inputs: list) -> list:
        a, b = inputs
        with np.errstate(all="ignore"):
            result = np.asarray(fn(node, a, b))
        return [result.astype(out_dtype or a.dtype, copy=False)]

    register(op_type, reference, dtypes=dtypes, inplace_inputs=() if out_dtype else inplace)


def _pow(node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # float64 intermediates keep x**2 and x**0.5 exact to the last float32 bit;
    # the result has the base's type (int base ** float exponent stays int)
    return np.power(_d(a), _d(b))


def _div(node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):
        # C semantics: truncate toward zero
        quotient = np.floor_divide(a, b)
        fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
        return quotient + fix.astype(a.dtype)
    return a / b


def _mod(node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if node.attr("fmod", 0):
        return np.fmod(a, b)  # sign of the dividend, as C fmod
    return np.mod(a, b)  # sign of the divisor, as Python


def _mod_check(node: Node, graph: Graph) -> str | None:
    if not node.attr("fmod", 0) and graph.tensors[node.inputs[0]].dtype is DType.FLOAT32:
        return "Mod with fmod=0 is defined for integers only"
    return None


def _prelu(node: Node, x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    return np.where(x < 0, x * slope, x)


_binary("Add", lambda n, a, b: a + b, dtypes=(NUMERIC,))
_binary("Sub", lambda n, a, b: a - b, dtypes=(NUMERIC,))
_binary("Mul", lambda n, a, b: a * b, dtypes=(NUMERIC,))
_binary("Div", _div, dtypes=(NUMERIC,))
_binary("Pow", _pow, dtypes=(FLOAT | INDEX,), inplace=(0,))
_binary("PRelu", _prelu, dtypes=(FLOAT,), inplace=(0,))
register("Mod", lambda n, i: [np.asarray(_mod(n, *i)).astype(i[0].dtype)], dtypes=(NUMERIC,),
         inplace_inputs=(0, 1), check=_mod_check)
for _name, _fn in (("Equal", np.equal), ("Less", np.less), ("Greater", np.greater),
                   ("LessOrEqual", np.less_equal), ("GreaterOrEqual", np.greater_equal)):
    _binary(_name, lambda n, a, b, fn=_fn: fn(a, b),
            dtypes=(NUMERIC | BOOL,) if _name == "Equal" else (NUMERIC,), out_dtype=np.bool_)
for _name, _fn in (("And", np.logical_and), ("Or", np.logical_or), ("Xor", np.logical_xor)):
    _binary(_name, lambda n, a, b, fn=_fn: fn(a, b), dtypes=(BOOL,))


def _variadic(op_type: str, fn, dtypes=(NUMERIC,)) -> None:
    def reference(node: Node, inputs: list) -> list:
        arrays = [a for a in inputs if a is not None]
        with np.errstate(all="ignore"):
            result = fn(arrays)
        return [np.asarray(result).astype(arrays[0].dtype, copy=False)]

    register(op_type, reference, dtypes=dtypes, inplace_inputs=VARIADIC)


def _fold(fn):
    def apply(arrays):
        total = arrays[0]
        for other in arrays[1:]:
            total = fn(total, other)
        return np.broadcast_to(total, np.broadcast_shapes(*(a.shape for a in arrays)))
    return apply


def _mean(arrays):
    total = _fold(np.add)([_d(a) for a in arrays])
    return total / len(arrays)


_variadic("Sum", _fold(np.add))
_variadic("Max", _fold(np.maximum))
_variadic("Min", _fold(np.minimum))
_variadic("Mean", _mean, dtypes=(FLOAT,))


def _where(node: Node, inputs: list) -> list:
    cond, a, b = inputs
    return [np.where(cond, a, b).astype(a.dtype, copy=False)]


register("Where", _where, dtypes=(BOOL, ANY_SUPPORTED), inplace_inputs=(1, 2))


def _not(node: Node, inputs: list) -> list:
    return [np.logical_not(inputs[0])]


register("Not", _not, dtypes=(BOOL,), inplace_inputs=(0,))


# ----- casts -------------------------------------------------------------
def _onnx_to_numpy(to: int) -> np.dtype | None:
    """numpy dtype of an ONNX type code the ops support (ir.DTYPE_TABLE), else None."""
    found = DType.from_onnx(to)
    return found.numpy if found in ANY_SUPPORTED else None


def _cast_check(node: Node, graph: Graph) -> str | None:
    to = node.attr("to")
    return None if _onnx_to_numpy(to) is not None else f"Cast to type {to} not supported"


def _cast_array(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if x.dtype.kind == "f" and dtype.kind in "iu":
        with np.errstate(all="ignore"):
            return np.trunc(x).astype(dtype)  # C conversion truncates toward zero
    return x.astype(dtype)


def _cast(node: Node, inputs: list) -> list:
    return [_cast_array(inputs[0], _onnx_to_numpy(node.attr("to")))]


register("Cast", _cast, dtypes=(ANY_SUPPORTED,), check=_cast_check)
register("CastLike", lambda n, i: [_cast_array(i[0], i[1].dtype)], dtypes=(ANY_SUPPORTED,))
