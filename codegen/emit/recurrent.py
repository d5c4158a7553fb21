"""C lowering of RNN, GRU and LSTM (runtime_c/o2m_recurrent.c).

The node's description comes from onnx2mcu/ops/recurrent.py (`graph_spec`), the same
one the numpy reference and the scratch formula read (docs/ARCHITECTURE.md, kernels):
the emitter only turns it into an `o2m_rnn_params` and strides for the layout.
"""
from __future__ import annotations

from onnx2mcu.codegen.context import c_float
from onnx2mcu.codegen.kernel_registry import register_kernel
from onnx2mcu.ir import DType, Node
from onnx2mcu.ops._util import has_input, has_output
from onnx2mcu.ops.recurrent import graph_spec

RECURRENT = "o2m_recurrent.c"
KINDS = {"RNN": 0, "GRU": 1, "LSTM": 2}


def _strides(spec) -> tuple[int, ...]:
    """(x_t, x_b, y_t, y_d, y_b, s_d, s_b) in elements."""
    i, h, b, s, d = spec.input_size, spec.hidden, spec.batch, spec.seq, spec.dirs
    if spec.layout == 0:
        return (b * i, i, d * b * h, b * h, h, b * h, h)
    return (i, s * i, d * h, h, s * d * h, h, d * h)


def _act_rows(spec) -> str:
    rows = []
    for d in range(2):
        acts = spec.activations[min(d, spec.dirs - 1)]
        cells = [f"{{{a.code}, {c_float(a.alpha)}, {c_float(a.beta)}}}" for a in acts]
        cells += ["{0, 0.0f, 0.0f}"] * (3 - len(cells))
        rows.append("{" + ", ".join(cells) + "}")
    return "{" + ", ".join(rows) + "}"


def _emit_recurrent(node: Node, ctx) -> list[str]:
    for position, name in enumerate(node.inputs):
        if name and position != 4 and ctx.dtype(name) is not DType.FLOAT32:
            ctx.refuse(node, f"no C kernel for dtype {ctx.dtype(name).value}")
    if has_input(node, 4) and ctx.dtype(node.inputs[4]) is not DType.INT32:
        ctx.refuse(node, "sequence_lens must be int32 (as the ONNX spec says)")
    spec = graph_spec(node, ctx.graph)
    ctx.check_size(node, *[n for n in node.inputs if n], *[n for n in node.outputs if n])
    fields = [KINDS[spec.op], spec.seq, spec.batch, spec.input_size, spec.hidden, spec.dirs,
              int(spec.direction == "reverse"), spec.linear_before_reset, spec.input_forget]
    init = ", ".join(str(v) for v in fields)
    init += f", {int(spec.clip is not None)}, {c_float(spec.clip or 0.0)}, {spec.chunk}, "
    init += ", ".join(str(v) for v in _strides(spec))
    params = ctx.declare("o2m_rnn_params", "{" + init + ", " + _act_rows(spec) + "}",
                         hint=node.op_type.lower())

    def inp(i: int) -> str:
        return ctx.ptr(node.inputs[i]) if has_input(node, i) else "NULL"

    def out(i: int) -> str:
        return ctx.ptr(node.outputs[i]) if has_output(node, i) else "NULL"

    peep = inp(7) if spec.op == "LSTM" else "NULL"
    y_c = out(2) if spec.op == "LSTM" else "NULL"
    ctx.need(RECURRENT)
    return [f"o2m_recurrent_f32(&{params}, {inp(0)}, {inp(1)}, {inp(2)}, {inp(3)}, {inp(4)}, "
            f"{inp(5)}, {inp(6) if spec.op == 'LSTM' else 'NULL'}, {peep}, {out(0)}, {out(1)}, "
            f"{y_c}, {ctx.scratch(node)});"]


for _op in ("RNN", "GRU", "LSTM"):
    register_kernel(_op, _emit_recurrent, dtypes=(DType.FLOAT32,), sources=(RECURRENT,))
