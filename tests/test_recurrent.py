"""RNN, GRU and LSTM: the numpy reference (onnx2mcu/ops/recurrent.py) and the C kernel
(runtime_c/o2m_recurrent.c) against onnxruntime over the attributes the ONNX spec lists:
directions, layouts, initial states, sequence_lens, linear_before_reset, peepholes,
input_forget, clip and every activation function with its alpha/beta.

The ONNX conformance cases of these ops run in tests/test_conformance.py and
tests/test_conformance_c.py; the models exported from PyTorch are in
tests/test_recurrent_models.py.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnx2mcu.build import compile_model
from onnx2mcu.frontend import load
from onnx2mcu.ops import lookup, unsupported_reason
from onnx2mcu.ops.recurrent import GATES, PROJECTION_BUDGET_BYTES, graph_spec
from onnx2mcu import runner

ort = pytest.importorskip("onnxruntime")

HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
MAX_REL_ERR = 1e-4


@dataclass(frozen=True)
class Config:
    op: str
    direction: str = "forward"
    layout: int = 0
    seq: int = 5
    batch: int = 3
    input_size: int = 4
    hidden: int = 6
    bias: bool = True
    initial: bool = False
    seq_lens: tuple[int, ...] | None = None
    attrs: dict = field(default_factory=dict, hash=False)
    peepholes: bool = False
    outputs: tuple[str, ...] = ("Y", "Y_h", "Y_c")

    @property
    def id(self) -> str:
        parts = [self.op, self.direction, f"layout{self.layout}"]
        parts += ["nobias"] if not self.bias else []
        parts += ["h0"] if self.initial else []
        parts += ["lens"] if self.seq_lens else []
        parts += ["peep"] if self.peepholes else []
        parts += [f"{k}={v}" for k, v in sorted(self.attrs.items())]
        parts += ["out=" + "+".join(o or "_" for o in self.outputs)] if self.outputs != Config.outputs else []
        return "-".join(str(p) for p in parts).replace(" ", "")


def build_model(cfg: Config, seed: int = 0) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """One recurrent node with random weights (initializers) and random runtime inputs."""
    rng = np.random.default_rng(seed)
    dirs = 2 if cfg.direction == "bidirectional" else 1
    gh = GATES[cfg.op] * cfg.hidden
    x_shape = [cfg.seq, cfg.batch, cfg.input_size] if cfg.layout == 0 else [cfg.batch, cfg.seq, cfg.input_size]
    s_shape = [dirs, cfg.batch, cfg.hidden] if cfg.layout == 0 else [cfg.batch, dirs, cfg.hidden]
    inits = [helper.make_tensor("W", TensorProto.FLOAT, [dirs, gh, cfg.input_size],
                                rng.uniform(-0.5, 0.5, (dirs, gh, cfg.input_size)).astype(np.float32).ravel()),
             helper.make_tensor("R", TensorProto.FLOAT, [dirs, gh, cfg.hidden],
                                rng.uniform(-0.5, 0.5, (dirs, gh, cfg.hidden)).astype(np.float32).ravel())]
    names = ["X", "W", "R"]
    if cfg.bias:
        inits.append(helper.make_tensor("B", TensorProto.FLOAT, [dirs, 2 * gh],
                                        rng.uniform(-0.5, 0.5, (dirs, 2 * gh)).astype(np.float32).ravel()))
    names.append("B" if cfg.bias else "")
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    feeds = {"X": rng.standard_normal(x_shape).astype(np.float32)}
    if cfg.seq_lens is not None:
        inits.append(helper.make_tensor("lens", TensorProto.INT32, [cfg.batch], list(cfg.seq_lens)))
    names.append("lens" if cfg.seq_lens is not None else "")
    states = ["initial_h"] + (["initial_c"] if cfg.op == "LSTM" else [])
    for state in states:
        if cfg.initial:
            graph_inputs.append(helper.make_tensor_value_info(state, TensorProto.FLOAT, s_shape))
            feeds[state] = rng.standard_normal(s_shape).astype(np.float32)
        names.append(state if cfg.initial else "")
    if cfg.peepholes:
        inits.append(helper.make_tensor("P", TensorProto.FLOAT, [dirs, 3 * cfg.hidden],
                                        rng.uniform(-0.5, 0.5, (dirs, 3 * cfg.hidden)).astype(np.float32).ravel()))
        names.append("P")
    while names and not names[-1]:
        names.pop()
    wanted = [o for o in cfg.outputs if o != "Y_c" or cfg.op == "LSTM"]
    while wanted and not wanted[-1]:
        wanted.pop()
    node = helper.make_node(cfg.op, names, wanted, hidden_size=cfg.hidden, direction=cfg.direction,
                            layout=cfg.layout, **cfg.attrs)
    y_shape = ([cfg.seq, dirs, cfg.batch, cfg.hidden] if cfg.layout == 0
               else [cfg.batch, cfg.seq, dirs, cfg.hidden])
    graph_outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, y_shape if o == "Y" else s_shape)
                     for o in wanted if o]
    model = helper.make_model(helper.make_graph([node], cfg.id, graph_inputs, graph_outputs, inits),
                              opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model, feeds


def _acts(*names):
    return {"activations": list(names)}


# activation lists per direction: RNN f; GRU f g; LSTM f g h
ACTIVATION_CASES = [
    Config("RNN", attrs=_acts("Relu")),
    Config("RNN", attrs={**_acts("LeakyRelu"), "activation_alpha": [0.2]}),
    Config("RNN", attrs={**_acts("ThresholdedRelu"), "activation_alpha": [0.3]}),
    Config("RNN", attrs={**_acts("ScaledTanh"), "activation_alpha": [0.7], "activation_beta": [1.3]}),
    Config("RNN", attrs={**_acts("Elu"), "activation_alpha": [0.8]}),
    Config("RNN", attrs=_acts("Softsign")),
    Config("RNN", attrs=_acts("Softplus")),
    Config("RNN", attrs={**_acts("Affine"), "activation_alpha": [0.5], "activation_beta": [0.1]}),
    Config("GRU", attrs={**_acts("HardSigmoid", "Softsign"), "activation_alpha": [0.3],
                         "activation_beta": [0.4]}),
    Config("LSTM", attrs=_acts("Sigmoid", "Softsign", "Relu")),
    Config("LSTM", direction="bidirectional",
           attrs={**_acts("HardSigmoid", "Tanh", "Tanh", "Sigmoid", "LeakyRelu", "Softplus"),
                  "activation_alpha": [0.25, 0.1], "activation_beta": [0.45]}),
]

CASES = [
    *(Config(op, direction=d, layout=layout, initial=initial)
      for op in ("RNN", "GRU", "LSTM") for d in ("forward", "reverse", "bidirectional")
      for layout in (0, 1) for initial in (False, True)),
    *(Config(op, direction=d, seq_lens=(5, 2, 4), initial=True)
      for op in ("RNN", "GRU", "LSTM") for d in ("forward", "reverse", "bidirectional")),
    Config("GRU", attrs={"linear_before_reset": 1}),
    Config("GRU", direction="bidirectional", layout=1, initial=True, attrs={"linear_before_reset": 1}),
    Config("GRU", bias=False, attrs={"linear_before_reset": 1}),
    Config("LSTM", peepholes=True, initial=True),
    Config("LSTM", direction="bidirectional", peepholes=True, seq_lens=(3, 5, 1)),
    Config("LSTM", attrs={"input_forget": 1}),
    Config("LSTM", bias=False),
    *(Config(op, attrs={"clip": 0.4}) for op in ("RNN", "GRU", "LSTM")),
    Config("LSTM", outputs=("", "Y_h")),
    Config("GRU", outputs=("Y",)),
    Config("LSTM", outputs=("Y", "", "Y_c")),
    *ACTIVATION_CASES,
]
IDS = [c.id for c in CASES]
assert len(set(IDS)) == len(IDS)
# the C kernel projects the whole sequence per GEMM when it fits, else in chunks:
# the long case here is split into several chunks
LONG = Config("LSTM", direction="bidirectional", seq=70, batch=2, input_size=3, hidden=8)


def ort_outputs(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    """onnxruntime's outputs.  Its CPU kernels refuse layout=1 ("batchwise ... not
    supported"), so a layout-1 node runs as the same node with layout=0 on transposed
    inputs, and its outputs are transposed back."""
    node = model.graph.node[0]
    layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
    if layout == 0:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, feeds)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    node = model.graph.node[0]
    for attr in node.attribute:
        if attr.name == "layout":
            attr.i = 0
    swap = {2: (1, 0, 2), 3: (1, 0, 2), 4: (1, 2, 0, 3)}  # rank -> batch-major to seq-major
    for info in list(model.graph.input) + list(model.graph.output):
        dims = info.type.tensor_type.shape.dim
        values = [d.dim_value for d in dims]
        for d, k in zip(dims, swap[len(values)]):
            d.dim_value = values[k]
    feeds0 = {k: np.ascontiguousarray(v.transpose(1, 0, 2)) for k, v in feeds.items()}
    outs = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, feeds0)
    return [o.transpose(2, 0, 1, 3) if o.ndim == 4 else o.transpose(1, 0, 2) for o in outs]


def reference_outputs(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    graph = load(model, input_shapes={k: v.shape for k, v in feeds.items()})
    node = graph.nodes[0]
    assert unsupported_reason(node, graph) is None
    arrays = [feeds.get(n) if n in feeds else (graph.tensors[n].data if n else None) for n in node.inputs]
    outs = lookup(node.op_type).reference(node, arrays)
    return [o for o, name in zip(outs, node.outputs) if name]


def max_rel_err(got: np.ndarray, want: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(want))), 1e-6) if want.size else 1.0
    return float(np.max(np.abs(got.astype(np.float64) - want))) / scale if want.size else 0.0


@pytest.mark.parametrize("cfg", CASES + [LONG], ids=IDS + ["long-" + LONG.id])
def test_reference_matches_onnxruntime(cfg):
    model, feeds = build_model(cfg)
    want = ort_outputs(model, feeds)
    got = reference_outputs(model, feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert max_rel_err(g, w) <= MAX_REL_ERR


def test_long_sequence_is_projected_in_chunks():
    model, feeds = build_model(LONG)
    graph = load(model, input_shapes={k: v.shape for k, v in feeds.items()})
    spec = graph_spec(graph.nodes[0], graph)
    assert 1 < spec.chunk < spec.seq
    assert spec.chunk * spec.batch * spec.gates * spec.hidden * 4 <= PROJECTION_BUDGET_BYTES
    short = graph_spec(*_loaded(Config("LSTM")))
    assert short.chunk == short.seq  # one GEMM over the whole sequence


def _loaded(cfg):
    model, feeds = build_model(cfg)
    graph = load(model, input_shapes={k: v.shape for k, v in feeds.items()})
    return graph.nodes[0], graph


def test_bad_activation_is_refused_with_a_reason():
    node, graph = _loaded(Config("RNN", attrs=_acts("Tanh")))
    node.attrs["activations"] = ["Gelu"]
    assert "activation 'Gelu' not supported" in unsupported_reason(node, graph)
    node.attrs["activations"] = ["Tanh", "Tanh"]
    assert "2 activations given, 1 expected" in unsupported_reason(node, graph)


@pytest.mark.c
@pytest.mark.skipif(not HAVE_HOST, reason="gcc / make not installed")
@pytest.mark.parametrize("cfg", CASES + [LONG], ids=IDS + ["long-" + LONG.id])
def test_generated_c_matches_onnxruntime(cfg, tmp_path, monkeypatch):
    model, feeds = build_model(cfg, seed=1)
    result = compile_model(model, tmp_path / "project", board="host", inputs=feeds)
    if cfg.layout == 1:  # see ort_outputs: the runner's own onnxruntime call refuses layout 1
        names = [o.name for o in model.graph.output]
        monkeypatch.setattr(runner, "expected_outputs", lambda proto, report, values: (
            dict(zip(names, ort_outputs(model, dict(values)))), "onnxruntime"))
    data = runner.run_project_dir(str(result.out_dir), "host")
    assert data["reference"] == "onnxruntime"
    assert data["max_scaled_err"] <= MAX_REL_ERR


def _qdq_lstm() -> tuple[onnx.ModelProto, dict]:
    """An int8 QDQ model: quantized activations around an LSTM (its weights stay float)."""
    cfg = Config("LSTM", direction="bidirectional", initial=False, outputs=("Y",))
    model, feeds = build_model(cfg, seed=2)
    graph = model.graph
    node = graph.node[0]
    node.input[0] = "X_dq"
    node.output[0] = "Y_f"
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.02])
    out_scale = helper.make_tensor("s_out", TensorProto.FLOAT, [], [1.0 / 127])
    zero = helper.make_tensor("zp", TensorProto.INT8, [], [0])
    graph.initializer.extend([scale, out_scale, zero])
    graph.node.insert(0, helper.make_node("QuantizeLinear", ["X", "s", "zp"], ["X_q"]))
    graph.node.insert(1, helper.make_node("DequantizeLinear", ["X_q", "s", "zp"], ["X_dq"]))
    graph.node.extend([helper.make_node("QuantizeLinear", ["Y_f", "s_out", "zp"], ["Y_q"]),
                       helper.make_node("DequantizeLinear", ["Y_q", "s_out", "zp"], ["Y"])])
    return model, feeds


def test_quantized_lstm_runs_as_a_float_island():
    """OpDef.quantized is "float": graph_opt/float_islands.py keeps DequantizeLinear -> LSTM ->
    QuantizeLinear, so the recurrent op computes on the model's own real values."""
    from onnx2mcu import simulate

    model, feeds = _qdq_lstm()
    assert lookup("LSTM").quantized == "float"
    report = simulate(model, inputs=feeds)
    ops = [n.op_type for n in report.graph.nodes]
    assert "LSTM" in ops and "DequantizeLinear" in ops and "QuantizeLinear" in ops
    assert report.max_scaled_err is not None and report.max_scaled_err <= MAX_REL_ERR


@pytest.mark.c
@pytest.mark.skipif(not HAVE_HOST, reason="gcc / make not installed")
def test_quantized_lstm_float_island_in_c(tmp_path):
    model, feeds = _qdq_lstm()
    result = compile_model(model, tmp_path / "project", board="host", inputs=feeds)
    data = runner.run_project_dir(str(result.out_dir), "host")
    assert data["reference"] == "onnxruntime"
    assert data["max_scaled_err"] <= MAX_REL_ERR
