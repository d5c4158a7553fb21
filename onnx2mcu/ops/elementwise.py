"""Elementwise ops: unary activations and math, broadcasting binary arithmetic,
comparisons and logic, variadic Sum/Mean/Max/Min, Where, Cast.

Ops whose output has the dtype of an input run in place: the output may take
the bytes of an input of the same size and dtype that dies at this op (the
memory model checks size and dtype).
"""
from __future__ import annotations

import math

import numpy as np

from onnx2mcu.codegen.context import (ELEMENTWISE, KERNEL_SUFFIX, TENSOR, bc_view,
                                      broadcast_strides, c_float, dense_strides, simplify_strided)
from onnx2mcu.ir import DType, Graph, Node
from onnx2mcu.ops._util import has_input, input_or_none
from onnx2mcu.ops.registry import ANY_SUPPORTED, BOOL, FLOAT, INDEX, INTEGER, NUMERIC, register

F32 = np.float32
VARIADIC = tuple(range(16))  # "any input position" for variadic in-place ops


def _unary(op_type: str, fn, dtypes=(FLOAT,), emit_c=None) -> None:
    def reference(node: Node, inputs: list) -> list:
        x = inputs[0]
        with np.errstate(all="ignore"):
            return [np.asarray(fn(node, x)).astype(x.dtype, copy=False)]

    register(op_type, reference, dtypes=dtypes, inplace_inputs=(0,), emit_c=emit_c)


# ----- C emission helpers (shared by the ops of this module) --------------
def _suffix(node: Node, ctx, name: str, allowed=("f32",)) -> str:
    dtype = ctx.dtype(name)
    suffix = KERNEL_SUFFIX.get(dtype)
    if suffix not in allowed:
        ctx.refuse(node, f"no C kernel for dtype {dtype.value}")
    return suffix


def emit_copy_same(ctx, src: str, dst: str) -> list[str]:
    """dst = src for tensors of the same size (nothing when they share their bytes)."""
    if ctx.same_bytes(src, dst) or ctx.nbytes(dst) == 0:
        return []
    return [f"memcpy({ctx.ptr(dst)}, {ctx.ptr(src)}, {ctx.nbytes(dst)}u);"]


def emit_unary(kernel: str, params=None, allowed=("f32",)):
    """emit_c for y = f(x) by `o2m_<kernel>_<T>(n, x, y[, params])`."""
    def emit(node: Node, ctx) -> list[str]:
        x, y = node.inputs[0], node.outputs[0]
        suffix = _suffix(node, ctx, x, allowed)
        ctx.need(ELEMENTWISE)
        extra = "".join(", " + p for p in params(node)) if params else ""
        return [f"o2m_{kernel}_{suffix}({ctx.numel(y)}, {ctx.ptr(x)}, {ctx.ptr(y)}{extra});"]
    return emit


def _attr_f(key: str, default: float):
    return lambda node: c_float(node.attr(key, default))


def emit_binary_call(node: Node, ctx, kernel: str, a: str, b: str, y: str, suffix: str) -> list[str]:
    """y = a OP b with numpy broadcasting, in the cheapest of the three kernel forms."""
    out = ctx.shape(y)
    n = ctx.numel(y)
    ctx.need(ELEMENTWISE)
    pa, pb, py = ctx.ptr(a), ctx.ptr(b), ctx.ptr(y)
    if ctx.numel(a) == n and ctx.numel(b) == n:
        return [f"o2m_{kernel}_{suffix}({n}, {pa}, {pb}, {py});"]
    for full, other, first in ((a, b, 0), (b, a, 1)):
        if ctx.numel(full) == n:
            view = bc_view(ctx.shape(other), out)
            if view is not None:
                outer, mid, inner = view
                pf, po = (pa, pb) if full == a else (pb, pa)
                return [f"o2m_{kernel}_bc_{suffix}({outer}, {mid}, {inner}, {pf}, {po}, {first}, "
                        f"{py});"]
    dims, (sa, sb, _) = simplify_strided(out, [broadcast_strides(ctx.shape(a), out),
                                               broadcast_strides(ctx.shape(b), out),
                                               dense_strides(out)])
    if len(dims) > 6:
        ctx.refuse(node, f"broadcast over {len(dims)} dims (the C kernels take up to 6)")
    return [f"o2m_{kernel}_nd_{suffix}({len(dims)}, {ctx.int_array(dims)}, {ctx.int_array(sa, 'strides')}, "
            f"{ctx.int_array(sb, 'strides')}, {pa}, {pb}, {py});"]


def emit_binary(kernel: str, allowed=("f32", "i64", "i32")):
    def emit(node: Node, ctx) -> list[str]:
        a, b = node.inputs[0], node.inputs[1]
        suffix = _suffix(node, ctx, a, allowed)
        if ctx.dtype(b) is not ctx.dtype(a):
            ctx.refuse(node, f"mixed input dtypes {ctx.dtype(a).value} and {ctx.dtype(b).value}")
        return emit_binary_call(node, ctx, kernel, a, b, node.outputs[0], suffix)
    return emit


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


def _emit_relu(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    suffix = _suffix(node, ctx, x, ("f32", "i64", "i32"))
    if suffix == "f32":
        return emit_unary("relu")(node, ctx)
    ctx.need(ELEMENTWISE)  # integer relu: max(x, 0) with a broadcast zero
    zero = ctx.const_value(0, ctx.dtype(x), "zero")
    return [f"o2m_max_bc_{suffix}(1, 1, {ctx.numel(y)}, {ctx.ptr(x)}, {zero}, 0, {ctx.ptr(y)});"]


def _emit_gelu(node: Node, ctx) -> list[str]:
    kernel = "gelu_tanh" if node.attr("approximate", "none") == "tanh" else "gelu"
    return emit_unary(kernel)(node, ctx)


def _emit_celu(node: Node, ctx) -> list[str]:
    # celu(x) = alpha * elu(x / alpha, 1); each step may run in place
    alpha = float(node.attr("alpha", 1.0))
    x, y = node.inputs[0], node.outputs[0]
    _suffix(node, ctx, x)
    n = ctx.numel(y)
    if alpha == 1.0:
        return emit_unary("elu", lambda _: ["1.0f"])(node, ctx)
    ctx.need(ELEMENTWISE)
    a = ctx.const_value(alpha, DType.FLOAT32, "alpha")
    return [f"o2m_div_bc_f32(1, 1, {n}, {ctx.ptr(x)}, {a}, 0, {ctx.ptr(y)});",
            f"o2m_elu_f32({n}, {ctx.ptr(y)}, {ctx.ptr(y)}, 1.0f);",
            f"o2m_mul_bc_f32(1, 1, {n}, {ctx.ptr(y)}, {a}, 0, {ctx.ptr(y)});"]


_unary("Relu", lambda n, x: np.maximum(x, 0), dtypes=(FLOAT | INTEGER,), emit_c=_emit_relu)
_unary("Sigmoid", lambda n, x: _sigmoid(x), emit_c=emit_unary("sigmoid"))
_unary("Tanh", lambda n, x: np.tanh(_d(x)), emit_c=emit_unary("tanh"))
_unary("Erf", lambda n, x: _erf(x), emit_c=emit_unary("erf"))
register("Gelu", lambda n, i: [_gelu(n, i[0]).astype(i[0].dtype)], inplace_inputs=(0,),
         check=_gelu_check, emit_c=_emit_gelu)
_unary("HardSigmoid", _hard_sigmoid, emit_c=emit_unary(
    "hardsigmoid", lambda n: [c_float(n.attr("alpha", 0.2)), c_float(n.attr("beta", 0.5))]))
_unary("HardSwish", lambda n, x: x * np.clip(x * F32(1 / 6) + F32(0.5), F32(0), F32(1)),
       emit_c=emit_unary("hardswish"))
_unary("LeakyRelu", lambda n, x: np.where(x >= 0, x, x * F32(n.attr("alpha", 0.01))),
       emit_c=emit_unary("leakyrelu", lambda n: [c_float(n.attr("alpha", 0.01))]))
_unary("Elu", _elu, emit_c=emit_unary("elu", lambda n: [c_float(n.attr("alpha", 1.0))]))
_unary("Selu", _selu, emit_c=emit_unary("selu", lambda n: [
    c_float(n.attr("alpha", 1.67326319217681884765625)),
    c_float(n.attr("gamma", 1.05070102214813232421875))]))
_unary("Celu", _celu, emit_c=_emit_celu)
_unary("Softplus", lambda n, x: _softplus(x), emit_c=emit_unary("softplus"))
_unary("Softsign", lambda n, x: x / (F32(1) + np.abs(x)), emit_c=emit_unary("softsign"))
_unary("Mish", lambda n, x: _d(x) * np.tanh(_softplus(x)))
_unary("Swish", lambda n, x: _d(x) * _sigmoid(n.attr("alpha", 1.0) * _d(x)))
_unary("ThresholdedRelu", lambda n, x: np.where(x > F32(n.attr("alpha", 1.0)), x, 0))
_unary("Shrink", _shrink, dtypes=(FLOAT,))
_unary("Sqrt", lambda n, x: np.sqrt(x), emit_c=emit_unary("sqrt"))
_unary("Reciprocal", lambda n, x: F32(1) / x, emit_c=emit_unary("reciprocal"))
_unary("Exp", lambda n, x: np.exp(_d(x)), emit_c=emit_unary("exp"))
_unary("Log", lambda n, x: np.log(x), emit_c=emit_unary("log"))
_unary("Neg", lambda n, x: -x, dtypes=(FLOAT | INTEGER,),
       emit_c=emit_unary("neg", allowed=("f32", "i64", "i32")))
_unary("Abs", lambda n, x: np.abs(x), dtypes=(FLOAT | INTEGER,),
       emit_c=emit_unary("abs", allowed=("f32", "i64", "i32")))
_unary("Sign", lambda n, x: np.sign(x), dtypes=(FLOAT | INTEGER,), emit_c=emit_unary("sign"))
_unary("Floor", lambda n, x: np.floor(x), emit_c=emit_unary("floor"))
_unary("Ceil", lambda n, x: np.ceil(x), emit_c=emit_unary("ceil"))
_unary("Round", lambda n, x: np.round(x),  # half to even, as ONNX specifies
       emit_c=emit_unary("round"))
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


def _emit_clip(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    suffix = _suffix(node, ctx, x, ("f32", "i64", "i32"))
    lo = node.inputs[1] if has_input(node, 1) else ""
    hi = node.inputs[2] if has_input(node, 2) else ""
    n = ctx.numel(y)
    ctx.need(ELEMENTWISE)
    if suffix == "f32":
        lo_c = ctx.scalar(lo) if lo else (c_float(node.attr("min")) if node.attr("min") is not None
                                          else "-INFINITY")
        hi_c = ctx.scalar(hi) if hi else (c_float(node.attr("max")) if node.attr("max") is not None
                                          else "INFINITY")
        return [f"o2m_clip_f32({n}, {ctx.ptr(x)}, {ctx.ptr(y)}, {lo_c}, {hi_c});"]
    code, src = [], ctx.ptr(x)
    for bound, kernel in ((lo, "max"), (hi, "min")):
        if bound:
            code.append(f"o2m_{kernel}_bc_{suffix}(1, 1, {n}, {src}, {ctx.ptr(bound)}, 0, {ctx.ptr(y)});")
            src = ctx.ptr(y)
    return code or emit_copy_same(ctx, x, y)


register("Clip", _clip, dtypes=(NUMERIC,), inplace_inputs=(0,), emit_c=_emit_clip)


# ----- binary ops with numpy broadcasting -------------------------------
def _binary(op_type: str, fn, dtypes=(FLOAT,), out_dtype=None, inplace=(0, 1), emit_c=None) -> None:
    def reference(node: Node, inputs: list) -> list:
        a, b = inputs
        with np.errstate(all="ignore"):
            result = np.asarray(fn(node, a, b))
        return [result.astype(out_dtype or a.dtype, copy=False)]

    register(op_type, reference, dtypes=dtypes, inplace_inputs=() if out_dtype else inplace,
             emit_c=emit_c)


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


def _emit_prelu(node: Node, ctx) -> list[str]:
    x, slope, y = node.inputs[0], node.inputs[1], node.outputs[0]
    _suffix(node, ctx, x)
    out, n = ctx.shape(y), ctx.numel(y)
    ctx.need(ELEMENTWISE)
    px, ps, py = ctx.ptr(x), ctx.ptr(slope), ctx.ptr(y)
    if ctx.numel(x) != n:
        ctx.refuse(node, "slope larger than the input")
    if ctx.numel(slope) == n:
        return [f"o2m_prelu_f32({n}, {px}, {ps}, {py});"]
    view = bc_view(ctx.shape(slope), out)
    if view is not None:
        return [f"o2m_prelu_bc_f32({view[0]}, {view[1]}, {view[2]}, {px}, {ps}, {py});"]
    dims, (ss, _) = simplify_strided(out, [broadcast_strides(ctx.shape(slope), out),
                                           dense_strides(out)])
    if len(dims) > 6:
        ctx.refuse(node, f"broadcast over {len(dims)} dims (the C kernels take up to 6)")
    return [f"o2m_prelu_nd_f32({len(dims)}, {ctx.int_array(dims)}, {ctx.int_array(ss, 'strides')}, "
            f"{px}, {ps}, {py});"]


_binary("Add", lambda n, a, b: a + b, dtypes=(NUMERIC,), emit_c=emit_binary("add"))
_binary("Sub", lambda n, a, b: a - b, dtypes=(NUMERIC,), emit_c=emit_binary("sub"))
_binary("Mul", lambda n, a, b: a * b, dtypes=(NUMERIC,), emit_c=emit_binary("mul"))
_binary("Div", _div, dtypes=(NUMERIC,), emit_c=emit_binary("div"))
_binary("Pow", _pow, dtypes=(FLOAT | INDEX,), inplace=(0,), emit_c=emit_binary("pow", ("f32",)))
_binary("PRelu", _prelu, dtypes=(FLOAT,), inplace=(0,), emit_c=_emit_prelu)
register("Mod", lambda n, i: [np.asarray(_mod(n, *i)).astype(i[0].dtype)], dtypes=(NUMERIC,),
         inplace_inputs=(0, 1), check=_mod_check)
for _name, _fn, _kernel in (("Equal", np.equal, "equal"), ("Less", np.less, "less"),
                            ("Greater", np.greater, "greater"),
                            ("LessOrEqual", np.less_equal, "less_equal"),
                            ("GreaterOrEqual", np.greater_equal, "greater_equal")):
    _binary(_name, lambda n, a, b, fn=_fn: fn(a, b),
            dtypes=(NUMERIC | BOOL,) if _name == "Equal" else (NUMERIC,), out_dtype=np.bool_,
            emit_c=emit_binary(_kernel, ("f32", "i64", "i32", "u8") if _name == "Equal"
                               else ("f32", "i64", "i32")))
for _name, _fn, _kernel in (("And", np.logical_and, "logical_and"),
                            ("Or", np.logical_or, "logical_or"),
                            ("Xor", np.logical_xor, "logical_xor")):
    _binary(_name, lambda n, a, b, fn=_fn: fn(a, b), dtypes=(BOOL,),
            emit_c=emit_binary(_kernel, ("u8",)))


def _variadic(op_type: str, fn, dtypes=(NUMERIC,), emit_c=None) -> None:
    def reference(node: Node, inputs: list) -> list:
        arrays = [a for a in inputs if a is not None]
        with np.errstate(all="ignore"):
            result = fn(arrays)
        return [np.asarray(result).astype(arrays[0].dtype, copy=False)]

    register(op_type, reference, dtypes=dtypes, inplace_inputs=VARIADIC, emit_c=emit_c)


def emit_variadic(kernel: str, mean: bool = False):
    """y = x0 OP x1 OP ... as a chain of broadcasting binary calls accumulating in y."""
    def emit(node: Node, ctx) -> list[str]:
        names = [name for name in node.inputs if name]
        y = node.outputs[0]
        suffix = _suffix(node, ctx, names[0], ("f32",) if mean else ("f32", "i64", "i32"))
        if any(ctx.dtype(name) is not ctx.dtype(names[0]) for name in names):
            ctx.refuse(node, "mixed input dtypes")
        if len(names) == 1:
            return emit_copy_same(ctx, names[0], y)
        # y may hold the bytes of one input (in place): fold that one in first
        shared = [name for name in names if ctx.same_bytes(name, y)]
        if shared:
            if len(shared) > 2:
                ctx.refuse(node, "the in-place input appears more than twice")
            rest = [name for name in names if name not in shared[:1]] if len(shared) == 1 else \
                [name for name in names if not ctx.same_bytes(name, y)]
            names = shared + rest
        code = emit_binary_call(node, ctx, kernel, names[0], names[1], y, suffix)
        for name in names[2:]:
            code += emit_binary_call(node, ctx, kernel, y, name, y, suffix)
        if mean:
            count = ctx.const_value(float(len(names)), DType.FLOAT32, "count")
            code.append(f"o2m_div_bc_f32(1, 1, {ctx.numel(y)}, {ctx.ptr(y)}, {count}, 0, "
                        f"{ctx.ptr(y)});")
        return code
    return emit


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


_variadic("Sum", _fold(np.add), emit_c=emit_variadic("add"))
_variadic("Max", _fold(np.maximum), emit_c=emit_variadic("max"))
_variadic("Min", _fold(np.minimum), emit_c=emit_variadic("min"))
_variadic("Mean", _mean, dtypes=(FLOAT,), emit_c=emit_variadic("add", mean=True))


def _where(node: Node, inputs: list) -> list:
    cond, a, b = inputs
    return [np.where(cond, a, b).astype(a.dtype, copy=False)]


def _emit_where(node: Node, ctx) -> list[str]:
    c, a, b = node.inputs[:3]
    y = node.outputs[0]
    suffix = _suffix(node, ctx, a, ("f32", "i64", "i32"))
    out = ctx.shape(y)
    dims, (sc, sa, sb, _) = simplify_strided(out, [broadcast_strides(ctx.shape(n), out)
                                                   for n in (c, a, b)] + [dense_strides(out)])
    if len(dims) > 6:
        ctx.refuse(node, f"broadcast over {len(dims)} dims (the C kernels take up to 6)")
    ctx.need(ELEMENTWISE)
    return [f"o2m_where_nd_{suffix}({len(dims)}, {ctx.int_array(dims)}, "
            f"{ctx.int_array(sc, 'strides')}, {ctx.int_array(sa, 'strides')}, "
            f"{ctx.int_array(sb, 'strides')}, {ctx.ptr(c)}, {ctx.ptr(a)}, {ctx.ptr(b)}, {ctx.ptr(y)});"]


register("Where", _where, dtypes=(BOOL, ANY_SUPPORTED), inplace_inputs=(1, 2), emit_c=_emit_where)


def _not(node: Node, inputs: list) -> list:
    return [np.logical_not(inputs[0])]


register("Not", _not, dtypes=(BOOL,), inplace_inputs=(0,), emit_c=emit_unary("not", allowed=("u8",)))


# ----- casts -------------------------------------------------------------
def _onnx_to_numpy(to: int) -> np.dtype | None:
    from onnx import TensorProto

    table = {TensorProto.FLOAT: np.float32, TensorProto.INT64: np.int64,
             TensorProto.INT32: np.int32, TensorProto.BOOL: np.bool_,
             TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8}
    found = table.get(to)
    return None if found is None else np.dtype(found)


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


_CAST_NAME = {DType.FLOAT32: "f32", DType.INT64: "i64", DType.INT32: "i32", DType.BOOL: "u8bool"}


def _emit_cast(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    src, dst = ctx.dtype(x), ctx.dtype(y)
    if src is dst:
        return emit_copy_same(ctx, x, y)
    if src not in _CAST_NAME or dst not in _CAST_NAME:
        ctx.refuse(node, f"no C kernel for a cast from {src.value} to {dst.value}")
    ctx.need(TENSOR)
    return [f"o2m_cast_{_CAST_NAME[src]}_{_CAST_NAME[dst]}({ctx.numel(y)}, {ctx.ptr(x)}, "
            f"{ctx.ptr(y)});"]


register("Cast", _cast, dtypes=(ANY_SUPPORTED,), check=_cast_check, emit_c=_emit_cast)
register("CastLike", lambda n, i: [_cast_array(i[0], i[1].dtype)], dtypes=(ANY_SUPPORTED,),
         emit_c=_emit_cast)
