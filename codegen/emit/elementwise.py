"""C lowering of the elementwise ops (onnx2mcu/ops/elementwise.py): one runtime_c call per step.

Unary and binary kernels are named `o2m_<op>_<suffix>` with the dtype suffix of
`KERNEL_SUFFIX`; binary ops with broadcasting pick the cheapest of three forms
(same shape, one broadcast run `_bc`, general strided `_nd`).
"""
from __future__ import annotations

from onnx2mcu.codegen.context import (ELEMENTWISE, KERNEL_SUFFIX, MISC, TENSOR, bc_view,
                                      broadcast_strides, c_float, dense_strides, simplify_strided)
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops._util import has_input


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


def emit_binary(kernel: str, allowed=("f32", "s64", "s32")):
    def emit(node: Node, ctx) -> list[str]:
        a, b = node.inputs[0], node.inputs[1]
        suffix = _suffix(node, ctx, a, allowed)
        if ctx.dtype(b) is not ctx.dtype(a):
            ctx.refuse(node, f"mixed input dtypes {ctx.dtype(a).value} and {ctx.dtype(b).value}")
        return emit_binary_call(node, ctx, kernel, a, b, node.outputs[0], suffix)
    return emit


def _emit_relu(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    suffix = _suffix(node, ctx, x, ("f32", "s64", "s32"))
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


def _emit_clip(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    suffix = _suffix(node, ctx, x, ("f32", "s64", "s32"))
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


def emit_variadic(kernel: str, mean: bool = False):
    """y = x0 OP x1 OP ... as a chain of broadcasting binary calls accumulating in y."""
    def emit(node: Node, ctx) -> list[str]:
        names = [name for name in node.inputs if name]
        y = node.outputs[0]
        suffix = _suffix(node, ctx, names[0], ("f32",) if mean else ("f32", "s64", "s32"))
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


def _emit_where(node: Node, ctx) -> list[str]:
    c, a, b = node.inputs[:3]
    y = node.outputs[0]
    if KERNEL_SUFFIX.get(ctx.dtype(a)) not in ("f32", "s64", "s32"):
        from onnx2mcu.codegen.emit.misc import emit_where_any  # other value dtypes: o2m_misc.c
        return emit_where_any(node, ctx)
    suffix = _suffix(node, ctx, a, ("f32", "s64", "s32"))
    out = ctx.shape(y)
    dims, (sc, sa, sb, _) = simplify_strided(out, [broadcast_strides(ctx.shape(n), out)
                                                   for n in (c, a, b)] + [dense_strides(out)])
    if len(dims) > 6:
        ctx.refuse(node, f"broadcast over {len(dims)} dims (the C kernels take up to 6)")
    ctx.need(ELEMENTWISE)
    return [f"o2m_where_nd_{suffix}({len(dims)}, {ctx.int_array(dims)}, "
            f"{ctx.int_array(sc, 'strides')}, {ctx.int_array(sa, 'strides')}, "
            f"{ctx.int_array(sb, 'strides')}, {ctx.ptr(c)}, {ctx.ptr(a)}, {ctx.ptr(b)}, {ctx.ptr(y)});"]


CAST_DTYPES = (DType.FLOAT32, DType.INT64, DType.INT32, DType.BOOL)  # o2m_cast_<from>_<to>


def _emit_cast(node: Node, ctx) -> list[str]:
    x, y = node.inputs[0], node.outputs[0]
    src, dst = ctx.dtype(x), ctx.dtype(y)
    if src is dst:
        return emit_copy_same(ctx, x, y)
    if src not in CAST_DTYPES or dst not in CAST_DTYPES:
        from onnx2mcu.codegen.emit.misc import emit_cast_any  # the other pairs (o2m_misc.c)
        return emit_cast_any(node, ctx)
    ctx.need(TENSOR)
    return [f"o2m_cast_{src.suffix}_{dst.suffix}({ctx.numel(y)}, {ctx.ptr(x)}, "
            f"{ctx.ptr(y)});"]


# ----- registrations ----------------------------------------------------------
F32, FI = ("f32",), ("f32", "s64", "s32")


def _kernel(op_type: str, emit, allowed=F32, sources=(ELEMENTWISE,)) -> None:
    """Register `emit` for the input dtypes whose kernel suffix is in `allowed`."""
    dtypes = [dtype for dtype, suffix in KERNEL_SUFFIX.items() if suffix in allowed]
    register_kernel(op_type, emit, dtypes=dtypes, sources=sources)


_kernel("Relu", _emit_relu, FI)
for _op, _name in (("Sigmoid", "sigmoid"), ("Tanh", "tanh"), ("Erf", "erf"),
                   ("HardSwish", "hardswish"), ("Softplus", "softplus"), ("Softsign", "softsign"),
                   ("Sqrt", "sqrt"), ("Reciprocal", "reciprocal"), ("Exp", "exp"), ("Log", "log"),
                   ("Sign", "sign"), ("Floor", "floor"), ("Ceil", "ceil"), ("Round", "round")):
    _kernel(_op, emit_unary(_name))
_kernel("Gelu", _emit_gelu)
_kernel("HardSigmoid", emit_unary(
    "hardsigmoid", lambda n: [c_float(n.attr("alpha", 0.2)), c_float(n.attr("beta", 0.5))]))
_kernel("LeakyRelu", emit_unary("leakyrelu", lambda n: [c_float(n.attr("alpha", 0.01))]))
_kernel("Elu", emit_unary("elu", lambda n: [c_float(n.attr("alpha", 1.0))]))
_kernel("Selu", emit_unary("selu", lambda n: [
    c_float(n.attr("alpha", 1.67326319217681884765625)),
    c_float(n.attr("gamma", 1.05070102214813232421875))]))
_kernel("Celu", _emit_celu)
_kernel("Neg", emit_unary("neg", allowed=FI), FI)
_kernel("Abs", emit_unary("abs", allowed=FI), FI)
_kernel("Clip", _emit_clip, FI)
for _op, _name in (("Add", "add"), ("Sub", "sub"), ("Mul", "mul"), ("Div", "div")):
    _kernel(_op, emit_binary(_name), FI)
def _emit_pow(node: Node, ctx) -> list[str]:
    if ctx.dtype(node.inputs[1]) is not DType.FLOAT32:  # integer exponent: o2m_misc.c
        from onnx2mcu.codegen.emit.misc import emit_pow_any
        return emit_pow_any(node, ctx)
    return emit_binary("pow", F32)(node, ctx)


_kernel("Pow", _emit_pow, sources=(ELEMENTWISE, MISC))
_kernel("PRelu", _emit_prelu)
_kernel("Equal", emit_binary("equal", FI + ("b8",)), FI + ("b8",))
for _op, _name in (("Less", "less"), ("Greater", "greater"), ("LessOrEqual", "less_equal"),
                   ("GreaterOrEqual", "greater_equal")):
    _kernel(_op, emit_binary(_name, FI), FI)
for _op, _name in (("And", "logical_and"), ("Or", "logical_or"), ("Xor", "logical_xor")):
    _kernel(_op, emit_binary(_name, ("b8",)), ("b8",))
_kernel("Sum", emit_variadic("add"), FI)
_kernel("Max", emit_variadic("max"), FI)
_kernel("Min", emit_variadic("min"), FI)
_kernel("Mean", emit_variadic("add", mean=True))
# Where is keyed by its first input, the bool condition; the emitter checks the values' dtype
register_kernel("Where", _emit_where, dtypes=(DType.BOOL,), sources=(ELEMENTWISE, MISC))
_kernel("Not", emit_unary("not", allowed=("b8",)), ("b8",))
# a cast between equal dtypes is a copy of any dtype; the emitter refuses pairs without a kernel
register_kernel("Cast", _emit_cast, sources=(TENSOR, MISC))
register_kernel("CastLike", _emit_cast, sources=(TENSOR, MISC))
