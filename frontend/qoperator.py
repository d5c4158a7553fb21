"""QOperator nodes (QLinearConv, QLinearMatMul, com.microsoft QGemm, QLinearAdd...) -> QDQ form.

onnxruntime's quantizer has two output formats.  QDQ wraps float ops in
DequantizeLinear/QuantizeLinear pairs, which frontend/qdq.py folds into
Tensor.quant.  QOperator (`QuantFormat.QOperator`) writes one fused node per
quantized op instead, its scales and zero points as extra inputs.  Such a node
means exactly "dequantize each quantized input with its parameters, run the
float op, quantize the result with the output's parameters"; this pass writes
that out on the ONNX graph, before shape inference and Q/DQ folding, so the
QDQ pipeline does the rest (integer constants, int8 kernels, float islands
where an op has none) and no op is defined twice:

    QLinearConv(x, xs, xz, w, ws, wz, ys, yz, B) ->
        DQ(x, xs, xz), DQ(w, ws, wz, axis=0), DQ(B, xs*ws, 0, axis=0) -> Conv -> Q(ys, yz)

* The float op keeps the QOperator node's name (messages and float-island
  reports name the model's node); the Q/DQ nodes and float values it adds are
  named after it ("<node>/dq_x", "<node>/x_float"...).
* Biases are int32 in the accumulator's scale: QLinearConv's is x_scale *
  w_scale (per channel when w is), QGemm's alpha * a_scale * b_scale; that
  scale becomes a float32 initializer, as onnxruntime's QDQ quantizer writes it.
* A weight, scale or zero point that is computed from constants (a
  DequantizeLinear -> QuantizeLinear of a constant, as onnxruntime writes for
  an already-quantized float model) is evaluated here, so that qdq.py sees an
  integer initializer.
* What the QDQ form cannot say (a per-column scale of a broadcast bias, a
  channels-last pool of unknown rank, an integer type that cannot be told) is
  one UserError naming the node.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnx2mcu.errors import UserError

MS = "com.microsoft"
QOPERATOR_OPS: dict[tuple[str, str], str] = {
    ("", "QLinearConv"): "Conv",
    ("", "QLinearMatMul"): "MatMul",
    (MS, "QGemm"): "Gemm",
    (MS, "QLinearAdd"): "Add",
    (MS, "QLinearMul"): "Mul",
    (MS, "QLinearAveragePool"): "AveragePool",
    (MS, "QLinearGlobalAveragePool"): "GlobalAveragePool",
    (MS, "QLinearConcat"): "Concat",
    (MS, "QLinearSigmoid"): "Sigmoid",
    (MS, "QLinearLeakyRelu"): "LeakyRelu",
    (MS, "QLinearSoftmax"): "Softmax",
}
"""(domain, QOperator op) -> the float op it quantizes."""

_INTEGER = (TensorProto.INT8, TensorProto.UINT8)
_ELEMENTWISE_INT = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "MaxPool", "Pad",
                    "Resize", "Split", "Slice", "Gather", "Identity", "Concat", "Expand", "Tile"}
"""Default-domain ops whose integer outputs have their first input's element type."""


def is_qoperator(node: onnx.NodeProto) -> bool:
    return (_domain(node), node.op_type) in QOPERATOR_OPS


def expand_qoperators(proto: onnx.ModelProto, label: str) -> int:
    """Rewrite every QOperator node of the main graph into its QDQ form in place; returns how many."""
    graph = proto.graph
    if not any(is_qoperator(n) for n in graph.node):
        return 0
    _evaluate_constant_inputs(proto)
    rewriter = _Rewriter(proto, label)
    nodes: list[onnx.NodeProto] = []
    count = 0
    for node in graph.node:
        if is_qoperator(node):
            nodes.extend(rewriter.rewrite(node))
            count += 1
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(rewriter.new_initializers)
    return count


# ----- constants computed from constants ---------------------------------------------
def _evaluate_constant_inputs(proto: onnx.ModelProto) -> None:
    """QOperator inputs that only depend on constants become initializers (of the same name)."""
    from onnx2mcu.frontend.fold import NEVER_FOLD, evaluate

    graph = proto.graph
    constant = {init.name for init in graph.initializer}
    producer: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        if _domain(node) == "" and node.op_type not in NEVER_FOLD \
                and all(i in constant for i in node.input if i) and any(node.output):
            constant.update(o for o in node.output if o)
            for o in node.output:
                if o:
                    producer[o] = node
    initial = {init.name for init in graph.initializer}
    wanted = sorted({i for n in graph.node if is_qoperator(n) for i in n.input
                     if i and i in constant and i not in initial})
    if not wanted:
        return
    needed: list[onnx.NodeProto] = []
    seen: set[int] = set()

    def visit(name: str) -> None:
        node = producer.get(name)
        if node is None or id(node) in seen:
            return
        seen.add(id(node))
        for i in node.input:
            if i:
                visit(i)
        needed.append(node)

    for name in wanted:
        visit(name)
    order = {id(n): k for k, n in enumerate(graph.node)}
    needed.sort(key=lambda n: order[id(n)])
    values = evaluate(proto, needed, {})
    # a name is either an initializer or a node output (ONNX's single assignment; a duplicate
    # would later be folded into a second initializer of the same name): the wanted values'
    # producers go, every output of theirs becoming an initializer that any other reader reads
    direct = {id(producer[name]) for name in wanted}
    outputs = sorted({o for n in needed if id(n) in direct for o in n.output if o})
    graph.initializer.extend(numpy_helper.from_array(np.asarray(values[name]), name) for name in outputs)
    kept = [n for n in graph.node if id(n) not in direct]
    del graph.node[:]
    graph.node.extend(kept)
    # their own producers stay for any other reader; remove_dead_nodes drops them when unread


# ----- the rewrite -------------------------------------------------------------------
@dataclass
class _Quantized:
    """One quantized operand of a QOperator node: value, scale, zero point (names; "" absent)."""
    value: str
    scale: str
    zero_point: str


class _Rewriter:
    def __init__(self, proto: onnx.ModelProto, label: str) -> None:
        self.proto = proto
        self.label = label
        graph = proto.graph
        self.inits = {init.name: init for init in graph.initializer}
        self.new_initializers: list[onnx.TensorProto] = []
        self.taken = {init.name for init in graph.initializer}
        for node in graph.node:
            self.taken.update(node.input)
            self.taken.update(node.output)
            self.taken.add(node.name)
        for info in list(graph.input) + list(graph.output) + list(graph.value_info):
            self.taken.add(info.name)
        self.types = _element_types(proto)
        self.ranks = _declared_ranks(proto)
        self._nodes: list[onnx.NodeProto] = []
        self._node: onnx.NodeProto | None = None

    # -- the per-op forms
    def rewrite(self, node: onnx.NodeProto) -> list[onnx.NodeProto]:
        self._nodes, self._node = [], node
        self.base = node.name or node.output[0]  # what the added nodes and values are named after
        op = node.op_type
        ins = list(node.input) + [""] * 9
        attrs = {a.name: a for a in node.attribute}
        if op == "QLinearConv":
            x, w = _Quantized(*ins[0:3]), _Quantized(*ins[3:6])
            xf = self.dequantize(x, "x")
            wf = self.dequantize(w, "w", axis=0)
            inputs = [xf, wf]
            if ins[8]:
                inputs.append(self.dequantize_bias(ins[8], x.scale, w.scale, 1.0, axis=0))
            y = self.float_op("Conv", inputs, _copy_attrs(attrs))
            self.quantize(y, _Quantized(node.output[0], ins[6], ins[7]), x)
        elif op == "QLinearMatMul":
            a, b = _Quantized(*ins[0:3]), _Quantized(*ins[3:6])
            y = self.float_op("MatMul", [self.dequantize(a, "a"), self.dequantize(b, "b", axis=-1)], [])
            self.quantize(y, _Quantized(node.output[0], ins[6], ins[7]), a)
        elif op == "QGemm":
            a, b = _Quantized(*ins[0:3]), _Quantized(*ins[3:6])
            alpha = float(helper.get_attribute_value(attrs["alpha"])) if "alpha" in attrs else 1.0
            trans_b = int(helper.get_attribute_value(attrs["transB"])) if "transB" in attrs else 0
            inputs = [self.dequantize(a, "a"), self.dequantize(b, "b", axis=0 if trans_b else 1)]
            if ins[6]:
                inputs.append(self.dequantize_bias(ins[6], a.scale, b.scale, alpha, axis=-1))
            y = self.float_op("Gemm", inputs, _copy_attrs(attrs) + [helper.make_attribute("beta", 1.0)],
                              float_output=not ins[7])
            if ins[7]:
                self.quantize(y, _Quantized(node.output[0], ins[7], ins[8]), a)
        elif op in ("QLinearAdd", "QLinearMul"):
            a, b = _Quantized(*ins[0:3]), _Quantized(*ins[3:6])
            y = self.float_op(QOPERATOR_OPS[(MS, op)], [self.dequantize(a, "a"), self.dequantize(b, "b")], [])
            self.quantize(y, _Quantized(node.output[0], ins[6], ins[7]), a)
        elif op in ("QLinearSigmoid", "QLinearLeakyRelu"):
            x = _Quantized(*ins[0:3])
            y = self.float_op(QOPERATOR_OPS[(MS, op)], [self.dequantize(x, "x")], _copy_attrs(attrs))
            self.quantize(y, _Quantized(node.output[0], ins[3], ins[4]), x)
        elif op in ("QLinearAveragePool", "QLinearGlobalAveragePool"):
            self._pool(node, ins, attrs)
        elif op == "QLinearConcat":
            self._concat(node, attrs)
        elif op == "QLinearSoftmax":
            self._softmax(node, ins, attrs)
        else:  # pragma: no cover - QOPERATOR_OPS and this table are one list
            raise AssertionError(op)
        return self._nodes

    def _pool(self, node: onnx.NodeProto, ins: list[str], attrs: dict) -> None:
        x = _Quantized(*ins[0:3])
        float_op = QOPERATOR_OPS[(MS, node.op_type)]
        channels_last = "channels_last" in attrs and helper.get_attribute_value(attrs["channels_last"])
        kept = [a for name, a in attrs.items() if name != "channels_last"]
        value = x.value
        rank = None
        if channels_last:
            if "kernel_shape" in attrs:
                rank = len(helper.get_attribute_value(attrs["kernel_shape"])) + 2
            else:
                rank = self.ranks.get(x.value)
            if rank is None:
                raise self.error("has channels_last=1 on an input of unknown rank; give the model's "
                                 "value shapes (onnx.shape_inference) or export it channels-first")
            value = self.transpose(value, [0, rank - 1, *range(1, rank - 1)], "to_channels_first")
        xf = self.dequantize(_Quantized(value, x.scale, x.zero_point), "x")
        y = self.float_op(float_op, [xf], _copy_list(kept))
        out = _Quantized(node.output[0], ins[3], ins[4])
        if channels_last:
            first = self.fresh(f"{self.base}/y_channels_first")
            self.quantize(y, _Quantized(first, out.scale, out.zero_point), x)
            self.transpose(first, [0, *range(2, rank), 1], "to_channels_last", output=node.output[0])
        else:
            self.quantize(y, out, x)

    def _concat(self, node: onnx.NodeProto, attrs: dict) -> None:
        ins = list(node.input)
        if len(ins) < 5 or (len(ins) - 2) % 3:
            raise self.error(f"has {len(ins)} inputs; QLinearConcat takes Y_scale, Y_zero_point and "
                             "(tensor, scale, zero point) triples")
        parts, first = [], None
        for k in range(2, len(ins), 3):
            q = _Quantized(*ins[k:k + 3])
            if self.types.get(q.value) == TensorProto.FLOAT:
                parts.append(q.value)  # a float operand is quantized with the output
                continue
            first = first or q
            parts.append(self.dequantize(q, f"x{(k - 2) // 3}"))
        y = self.float_op("Concat", parts, _copy_attrs(attrs))
        self.quantize(y, _Quantized(node.output[0], ins[0], ins[1]), first)

    def _softmax(self, node: onnx.NodeProto, ins: list[str], attrs: dict) -> None:
        x = _Quantized(*ins[0:3])
        opset = int(helper.get_attribute_value(attrs["opset"])) if "opset" in attrs else 13
        axis = int(helper.get_attribute_value(attrs["axis"])) if "axis" in attrs else (-1 if opset >= 13 else 1)
        out = _Quantized(node.output[0], ins[3], ins[4])
        if opset >= 13 or axis == -1:
            y = self.float_op("Softmax", [self.dequantize(x, "x")], [helper.make_attribute("axis", axis)])
            self.quantize(y, out, x)
            return
        # opset < 13: softmax over the dims from `axis` on, coerced to 2-D; moved on the integers
        flat = self.add("Flatten", [x.value], f"{self.base}/flatten", "x_2d", [helper.make_attribute("axis", axis)])
        y = self.float_op("Softmax", [self.dequantize(_Quantized(flat, x.scale, x.zero_point), "x")],
                          [helper.make_attribute("axis", -1)])
        y2 = self.fresh(f"{self.base}/y_2d")
        self.quantize(y, _Quantized(y2, out.scale, out.zero_point), x)
        shape = self.add("Shape", [x.value], f"{self.base}/shape", "x_shape", [])
        self._nodes.append(helper.make_node("Reshape", [y2, shape], [node.output[0]],
                                            name=self.fresh(f"{self.base}/reshape")))

    # -- building blocks
    def dequantize(self, q: _Quantized, role: str, axis: int | None = None) -> str:
        node = self._node
        scale = self.scalar_if_single(q.scale)
        zero = self.scalar_if_single(q.zero_point) if q.zero_point else ""
        attrs = []
        if self.numel(scale) not in (None, 1):
            if axis is None:
                raise self.error(f"has a per-axis scale '{q.scale}' for its input '{q.value}', which "
                                 "takes one scale; re-quantize it per tensor")
            attrs.append(helper.make_attribute("axis", axis))
        out = self.fresh(f"{self.base}/{role}_float")
        self._nodes.append(helper.make_node("DequantizeLinear", [q.value, scale] + ([zero] if zero else []),
                                            [out], name=self.fresh(f"{self.base}/dq_{role}"), **_kw(attrs)))
        return out

    def dequantize_bias(self, bias: str, x_scale: str, w_scale: str, alpha: float, axis: int) -> str:
        """DequantizeLinear of an int32 bias in the accumulator's scale alpha * x_scale * w_scale."""
        xs, ws = self.constant(x_scale, "input scale"), self.constant(w_scale, "weight scale")
        if xs.size != 1:
            raise self.error(f"has a per-axis input scale '{x_scale}'; re-quantize the input per tensor")
        scale = xs.reshape(()).astype(np.float32) * ws.reshape(-1).astype(np.float32)
        if alpha != 1.0:
            scale = (np.float32(alpha) * scale).astype(np.float32)
        scale = scale.reshape(()) if scale.size == 1 else scale
        zero = np.zeros(scale.shape, np.int32)
        scale_name = self.new_constant(f"{self.base}/bias_scale", scale.astype(np.float32))
        zero_name = self.new_constant(f"{self.base}/bias_zero_point", zero)
        attrs = [] if scale.ndim == 0 else [helper.make_attribute("axis", axis)]
        out = self.fresh(f"{self.base}/bias_float")
        self._nodes.append(helper.make_node("DequantizeLinear", [bias, scale_name, zero_name], [out],
                                            name=self.fresh(f"{self.base}/dq_bias"), **_kw(attrs)))
        return out

    def float_op(self, op_type: str, inputs: list[str], attrs: list, float_output: bool = False) -> str:
        node = self._node
        out = node.output[0] if float_output else self.fresh(f"{self.base}/y_float")
        made = helper.make_node(op_type, inputs, [out], name=node.name or self.fresh(self.base))
        made.attribute.extend(attrs)
        self._nodes.append(made)
        return out

    def quantize(self, y_float: str, out: _Quantized, like: _Quantized | None) -> None:
        """QuantizeLinear onto the node's output; a missing zero point is a 0 of the input's type."""
        zero = out.zero_point
        if not zero:
            dtype = self.integer_type(like)
            zero = self.new_constant(f"{self.base}/y_zero_point",
                                     np.zeros((), helper.tensor_dtype_to_np_dtype(dtype)))
        scale = self.scalar_if_single(out.scale)
        zero = self.scalar_if_single(zero)
        self._nodes.append(helper.make_node("QuantizeLinear", [y_float, scale, zero], [out.value],
                                            name=self.fresh(f"{self.base}/q_y")))

    def transpose(self, value: str, perm: list[int], role: str, output: str | None = None) -> str:
        out = output or self.fresh(f"{self.base}/x_{role}")
        self._nodes.append(helper.make_node("Transpose", [value], [out], name=self.fresh(f"{self.base}/{role}"),
                                            perm=perm))
        return out

    def add(self, op_type: str, inputs: list[str], name: str, role: str, attrs: list) -> str:
        out = self.fresh(f"{self.base}/{role}")
        made = helper.make_node(op_type, inputs, [out], name=self.fresh(name))
        made.attribute.extend(attrs)
        self._nodes.append(made)
        return out

    # -- constants and names
    def constant(self, name: str, what: str) -> np.ndarray:
        init = self.inits.get(name)
        if init is None:
            raise self.error(f"{what} '{name}' is not a constant; onnx2mcu needs constant quantization "
                             "parameters")
        return numpy_helper.to_array(init)

    def numel(self, name: str) -> int | None:
        init = self.inits.get(name)
        return None if init is None else int(np.prod(init.dims, dtype=np.int64))

    def scalar_if_single(self, name: str) -> str:
        """A one-element 1-D scale or zero point as a scalar (the per-tensor form DQ/Q read), a
        float16 or double scale as float32 (exact for float16: the float values stay float32)."""
        init = self.inits.get(name)
        if init is None:
            return name
        value = numpy_helper.to_array(init)
        wide = value.dtype in (np.float16, np.float64)
        single = len(init.dims) > 0 and value.size == 1
        if not wide and not single:
            return name
        if wide:
            value = value.astype(np.float32)
        return self.new_constant(f"{name}_float32" if wide else f"{name}_scalar",
                                 value.reshape(()) if single else value)

    def new_constant(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        tensor = numpy_helper.from_array(np.asarray(value), name)
        self.new_initializers.append(tensor)
        self.inits[name] = tensor
        return name

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name

    def integer_type(self, like: _Quantized | None) -> int:
        for name in ((like.zero_point, like.value) if like is not None else ()):
            dtype = self.types.get(name) if name else None
            if dtype in _INTEGER:
                return dtype
        raise self.error("omits its output zero point and the integer type of its input cannot be told; "
                         "give the zero point")

    def error(self, what: str) -> UserError:
        node = self._node
        return UserError(f"{self.label}: node '{node.name or node.output[0]}' ({node.op_type}) {what}")


# ----- element types and ranks, without shape inference (it does not know com.microsoft ops)
def _element_types(proto: onnx.ModelProto) -> dict[str, int]:
    graph = proto.graph
    types: dict[str, int] = {}
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
            types[info.name] = info.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    rules: dict[str, Callable[[onnx.NodeProto], int | None]] = {
        "QuantizeLinear": lambda n: (types.get(n.input[2]) if len(n.input) > 2 and n.input[2]
                                     else _attr(n, "output_dtype", 0) or TensorProto.UINT8),
        "DequantizeLinear": lambda n: types.get(n.input[1], TensorProto.FLOAT),
    }
    for node in graph.node:
        dtype = None
        if is_qoperator(node):
            ins = list(node.input) + [""] * 9
            out_zp = {"QLinearConv": 7, "QLinearMatMul": 7, "QGemm": 8, "QLinearAdd": 7, "QLinearMul": 7,
                      "QLinearConcat": 1}.get(node.op_type, 4)
            if node.op_type == "QGemm" and not ins[7]:
                dtype = TensorProto.FLOAT
            else:
                dtype = types.get(ins[out_zp]) if ins[out_zp] else None
                first = ins[2] if node.op_type == "QLinearConcat" else ins[0]
                dtype = dtype or types.get(first)
        elif _domain(node) == "" and node.op_type in rules:
            dtype = rules[node.op_type](node)
        elif _domain(node) == "" and node.op_type in _ELEMENTWISE_INT and node.input:
            dtype = types.get(node.input[0])
        if dtype:
            for o in node.output:
                if o:
                    types.setdefault(o, dtype)
    return types


_SAME_RANK = {("", "QuantizeLinear"), ("", "DequantizeLinear"), ("", "Relu"), ("", "Clip"), ("", "MaxPool"),
              ("", "Pad"), ("", "Transpose"), ("", "QLinearConv"), (MS, "QLinearAdd"), (MS, "QLinearMul"),
              (MS, "QLinearAveragePool"), (MS, "QLinearGlobalAveragePool"), (MS, "QLinearSigmoid"),
              (MS, "QLinearLeakyRelu"), (MS, "QLinearSoftmax")}
"""Ops whose output has their first input's rank (for a channels-last pool's transposes)."""


def _declared_ranks(proto: onnx.ModelProto) -> dict[str, int]:
    graph = proto.graph
    ranks = {init.name: len(init.dims) for init in graph.initializer}
    for info in list(graph.input) + list(graph.value_info) + list(graph.output):
        tensor_type = info.type.tensor_type
        if info.type.HasField("tensor_type") and tensor_type.HasField("shape"):
            ranks[info.name] = len(tensor_type.shape.dim)
    for node in graph.node:
        if (_domain(node), node.op_type) in _SAME_RANK and node.input and node.input[0] in ranks:
            for o in node.output[:1]:
                ranks.setdefault(o, ranks[node.input[0]])
    return ranks


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _copy_attrs(attrs: dict) -> list:
    return _copy_list(list(attrs.values()))


def _copy_list(attrs: list) -> list:
    copies = []
    for a in attrs:
        if a.name in ("opset", "channels_last"):
            continue
        c = onnx.AttributeProto()
        c.CopyFrom(a)
        copies.append(c)
    return copies


def _kw(attrs: list) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in attrs}


def _domain(node: onnx.NodeProto) -> str:
    return "" if node.domain in ("", "ai.onnx") else node.domain
