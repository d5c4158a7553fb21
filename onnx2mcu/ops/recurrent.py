"""Recurrent ops: RNN, GRU and LSTM (ONNX opset 7+ semantics, layout from opset 14).

One description (`RecurrentSpec`, computed by `spec_of`) serves the numpy
reference below and the C emitter (codegen/emit/recurrent.py), so that both
read the same activations, strides and projection chunk.

Semantics (ONNX operator spec; gate order in W/R/B: RNN i, GRU z r h, LSTM i o f c;
peepholes P: i o f):
  RNN   H = f(X Wi + H Ri + Wb + Rb)
  GRU   z = f(X Wz + H Rz + Wbz + Rbz);  r = f(X Wr + H Rr + Wbr + Rbr)
        h = g(X Wh + (r . H) Rh + Rbh + Wbh)          linear_before_reset = 0
        h = g(X Wh + r . (H Rh + Rbh) + Wbh)          linear_before_reset = 1
        H = (1 - z) . h + z . H
  LSTM  i = f(X Wi + H Ri + Pi . C + Wbi + Rbi);  f = f(X Wf + H Rf + Pf . C + Wbf + Rbf)
        (input_forget = 1: f = 1 - i)
        c = g(X Wc + H Rc + Wbc + Rbc);  C = f . C + i . c
        o = f(X Wo + H Ro + Po . C + Wbo + Rbo);  H = o . h(C)
`clip` bounds every gate pre-activation to [-clip, clip].  `sequence_lens`: for
batch entry b only steps t < len[b] run (the reverse direction starts at
len[b] - 1); Y is 0 at the other steps, Y_h / Y_c hold the state after the last
step that ran.  Quantized inputs run as a float island (`quantized="float"`,
graph_opt/float_islands.py): DequantizeLinear -> float op -> QuantizeLinear.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from onnx2mcu.ir import Graph, Node
from onnx2mcu.ops._util import f64, input_or_none
from onnx2mcu.ops.registry import FLOAT, INDEX, register

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
DEFAULT_ACTIVATIONS = {"RNN": ("Tanh",), "GRU": ("Sigmoid", "Tanh"),
                       "LSTM": ("Sigmoid", "Tanh", "Tanh")}

# name -> (C code, takes alpha, takes beta, default alpha, default beta); the alpha/beta
# lists are consumed in order by the activations that take them (as onnxruntime does)
ACTIVATIONS: dict[str, tuple[int, bool, bool, float, float]] = {
    "sigmoid": (0, False, False, 0.0, 0.0),
    "tanh": (1, False, False, 0.0, 0.0),
    "relu": (2, False, False, 0.0, 0.0),
    "hardsigmoid": (3, True, True, 0.2, 0.5),
    "affine": (4, True, True, 1.0, 0.0),
    "leakyrelu": (5, True, False, 0.01, 0.0),
    "thresholdedrelu": (6, True, False, 1.0, 0.0),
    "scaledtanh": (7, True, True, 1.0, 1.0),
    "elu": (8, True, False, 1.0, 0.0),
    "softsign": (9, False, False, 0.0, 0.0),
    "softplus": (10, False, False, 0.0, 0.0),
}

PROJECTION_BUDGET_BYTES = 16384
"""The input projection X W^T + biases is one GEMM over as many time steps as fit in this
many scratch bytes (at least one step): the whole sequence for small models."""


@dataclass(frozen=True)
class Activation:
    name: str
    code: int
    alpha: float
    beta: float


@dataclass(frozen=True)
class RecurrentSpec:
    op: str
    seq: int
    batch: int
    input_size: int
    hidden: int
    dirs: int
    direction: str
    layout: int
    gates: int
    clip: float | None
    linear_before_reset: int
    input_forget: int
    activations: tuple[tuple[Activation, ...], ...]  # per direction
    chunk: int  # time steps per input-projection GEMM

    @property
    def scratch_floats(self) -> int:
        gh = self.gates * self.hidden
        states = self.batch * self.hidden * (2 if self.op == "LSTM" else 1)
        return self.chunk * self.batch * gh + states + gh + self.hidden


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_activations(node: Node, dirs: int) -> tuple[tuple[Activation, ...], ...]:
    per_dir = len(DEFAULT_ACTIVATIONS[node.op_type])
    names = [_text(a) for a in (node.attr("activations") or [])]
    if not names:
        names = list(DEFAULT_ACTIVATIONS[node.op_type]) * dirs
    if len(names) != per_dir * dirs:
        raise ValueError(f"{node.op_type} '{node.name}': {len(names)} activations given, "
                         f"{per_dir * dirs} expected ({per_dir} per direction)")
    alphas = [float(a) for a in (node.attr("activation_alpha") or [])]
    betas = [float(b) for b in (node.attr("activation_beta") or [])]
    made = []
    for name in names:
        key = name.lower()
        if key not in ACTIVATIONS:
            raise ValueError(f"{node.op_type} '{node.name}': activation '{name}' not supported")
        code, takes_alpha, takes_beta, alpha, beta = ACTIVATIONS[key]
        if takes_alpha and alphas:
            alpha = alphas.pop(0)
        if takes_beta and betas:
            beta = betas.pop(0)
        made.append(Activation(key, code, alpha, beta))
    return tuple(tuple(made[d * per_dir:(d + 1) * per_dir]) for d in range(dirs))


def projection_chunk(seq: int, batch: int, gate_width: int) -> int:
    per_step = max(1, batch * gate_width * 4)
    return max(1, min(seq, PROJECTION_BUDGET_BYTES // per_step))


def spec_of(node: Node, x_shape, w_shape) -> RecurrentSpec:
    layout = int(node.attr("layout", 0))
    seq, batch = (x_shape[0], x_shape[1]) if layout == 0 else (x_shape[1], x_shape[0])
    direction = _text(node.attr("direction", "forward"))
    dirs = 2 if direction == "bidirectional" else 1
    gates = GATES[node.op_type]
    hidden = int(node.attr("hidden_size", w_shape[1] // gates))
    clip = node.attr("clip")
    return RecurrentSpec(
        op=node.op_type, seq=int(seq), batch=int(batch), input_size=int(x_shape[2]),
        hidden=hidden, dirs=dirs, direction=direction, layout=layout, gates=gates,
        clip=None if clip is None else float(clip),
        linear_before_reset=int(node.attr("linear_before_reset", 0)),
        input_forget=int(node.attr("input_forget", 0)),
        activations=parse_activations(node, dirs),
        chunk=projection_chunk(int(seq), int(batch), gates * hidden))


def graph_spec(node: Node, graph: Graph) -> RecurrentSpec:
    return spec_of(node, graph.tensors[node.inputs[0]].shape, graph.tensors[node.inputs[1]].shape)


# ----- the numpy reference (float64) ------------------------------------------
def apply_activation(act: Activation, x: np.ndarray) -> np.ndarray:
    a, b = act.alpha, act.beta
    name = act.name
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "hardsigmoid":
        return np.clip(a * x + b, 0.0, 1.0)
    if name == "affine":
        return a * x + b
    if name == "leakyrelu":
        return np.where(x >= 0, x, a * x)
    if name == "thresholdedrelu":
        return np.where(x > a, x, 0.0)
    if name == "scaledtanh":
        return a * np.tanh(b * x)
    if name == "elu":
        return np.where(x >= 0, x, a * (np.exp(np.minimum(x, 0.0)) - 1.0))
    if name == "softsign":
        return x / (1.0 + np.abs(x))
    if name == "softplus":
        return np.logaddexp(0.0, x)
    raise ValueError(f"activation {name}")


def _cell(spec: RecurrentSpec, acts, gx, h, c, rw, rb, peep):
    """One step for the batch rows in gx [n, G*H] (input projection + both biases except Rbh
    of a linear-before-reset GRU, which is in rb); returns new (h, c)."""
    hid = spec.hidden
    clip = (lambda v: np.clip(v, -spec.clip, spec.clip)) if spec.clip is not None else (lambda v: v)
    if spec.op == "RNN":
        return apply_activation(acts[0], clip(gx + h @ rw.T)), None
    if spec.op == "GRU":
        rz = gx[:, :2 * hid] + h @ rw[:2 * hid].T
        z = apply_activation(acts[0], clip(rz[:, :hid]))
        r = apply_activation(acts[0], clip(rz[:, hid:]))
        if spec.linear_before_reset:
            pre = gx[:, 2 * hid:] + r * (h @ rw[2 * hid:].T + rb)
        else:
            pre = gx[:, 2 * hid:] + (r * h) @ rw[2 * hid:].T
        cand = apply_activation(acts[1], clip(pre))
        return (1.0 - z) * cand + z * h, None
    pre = gx + h @ rw.T
    pi, po, pf = (peep[:hid], peep[hid:2 * hid], peep[2 * hid:]) if peep is not None else (0, 0, 0)
    i = apply_activation(acts[0], clip(pre[:, :hid] + pi * c))
    if spec.input_forget:
        f = 1.0 - i
    else:
        f = apply_activation(acts[0], clip(pre[:, 2 * hid:3 * hid] + pf * c))
    cand = apply_activation(acts[1], clip(pre[:, 3 * hid:]))
    c_new = f * c + i * cand
    o = apply_activation(acts[0], clip(pre[:, hid:2 * hid] + po * c_new))
    return o * apply_activation(acts[2], c_new), c_new


def _recurrent(node: Node, inputs: list) -> list:
    x, w, r = inputs[0], inputs[1], inputs[2]
    spec = spec_of(node, x.shape, w.shape)
    hid, gh, batch, seq = spec.hidden, spec.gates * spec.hidden, spec.batch, spec.seq
    bias = input_or_none(inputs, 3)
    lens = input_or_none(inputs, 4)
    h0, c0 = input_or_none(inputs, 5), input_or_none(inputs, 6)
    peep = input_or_none(inputs, 7) if spec.op == "LSTM" else None
    xs = f64(x) if spec.layout == 0 else f64(x).transpose(1, 0, 2)  # [seq, batch, in]
    if h0 is not None and spec.layout == 1:
        h0 = np.asarray(h0).transpose(1, 0, 2)
    if c0 is not None and spec.layout == 1:
        c0 = np.asarray(c0).transpose(1, 0, 2)
    lens = np.full(batch, seq, dtype=np.int64) if lens is None else np.asarray(lens).astype(np.int64)
    y = np.zeros((seq, spec.dirs, batch, hid))
    y_h = np.zeros((spec.dirs, batch, hid))
    y_c = np.zeros((spec.dirs, batch, hid))
    for d in range(spec.dirs):
        reverse = spec.direction == "reverse" or d == 1
        wb = f64(bias[d, :gh]) if bias is not None else np.zeros(gh)
        rb = f64(bias[d, gh:]) if bias is not None else np.zeros(gh)
        if spec.op == "GRU" and spec.linear_before_reset:
            in_bias, rbh = wb + np.concatenate([rb[:2 * hid], np.zeros(hid)]), rb[2 * hid:]
        else:
            in_bias, rbh = wb + rb, None
        rw = f64(r[d])
        pd = f64(peep[d]) if peep is not None else None
        h = f64(h0[d]) if h0 is not None else np.zeros((batch, hid))
        c = f64(c0[d]) if c0 is not None else np.zeros((batch, hid))
        gx_all = xs @ f64(w[d]).T + in_bias  # [seq, batch, G*H]
        for t in (range(seq - 1, -1, -1) if reverse else range(seq)):
            active = t < lens
            if not active.any():
                continue
            h_new, c_new = _cell(spec, spec.activations[d], gx_all[t][active], h[active], c[active],
                                 rw, rbh, pd)
            h[active] = h_new
            if c_new is not None:
                c[active] = c_new
            y[t, d][active] = h_new
        y_h[d], y_c[d] = h, c
    dtype = x.dtype
    if spec.layout == 1:
        y, y_h, y_c = y.transpose(2, 0, 1, 3), y_h.transpose(1, 0, 2), y_c.transpose(1, 0, 2)
    outs = [y.astype(dtype), y_h.astype(dtype)]
    if spec.op == "LSTM":
        outs.append(y_c.astype(dtype))
    return outs[:len(node.outputs)] if node.outputs else outs


def _scratch_bytes(node: Node, graph: Graph) -> int:
    return 4 * graph_spec(node, graph).scratch_floats


def _macs(node: Node, graph: Graph) -> int:
    spec = graph_spec(node, graph)
    gh = spec.gates * spec.hidden
    return spec.dirs * spec.seq * spec.batch * gh * (spec.input_size + spec.hidden)


def _check(node: Node, graph: Graph) -> str | None:
    try:
        spec = graph_spec(node, graph)
    except (ValueError, KeyError) as exc:
        return str(exc)
    if spec.direction not in ("forward", "reverse", "bidirectional"):
        return f"direction '{spec.direction}' unknown"
    if spec.layout not in (0, 1):
        return f"layout {spec.layout} unknown"
    return None


_DTYPES = (FLOAT, FLOAT, FLOAT, FLOAT, INDEX, FLOAT, FLOAT, FLOAT)
for _op in ("RNN", "GRU", "LSTM"):
    register(_op, _recurrent, dtypes=_DTYPES, scratch_bytes=_scratch_bytes, macs=_macs,
             check=_check)
