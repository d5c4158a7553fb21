"""End to end: PyTorch models with onnx2mcu.layers -> ONNX (both forms) -> lowering -> C on host and QEMU.

- Binary/adder-only models: every kernel is bit-exact with its reference, so
  the host and Cortex-M4 (QEMU mps2-an386) outputs equal the simulator's bit
  for bit, and the standard form matches onnxruntime within float tolerance.
- Adder ResNet-8 (CIFAR shape) and a BiBERT-style binarized BERT-tiny
  (every encoder linear layer binary; small vocabulary and S=32 to keep the
  test quick): compile, run under QEMU (on the host when QEMU is missing;
  host builds of the small models above cover the host), agree with the simulator
  (float kernels such as LayerNorm round differently from numpy in the last
  bits, hence a tolerance), and lowering is exact: the lowered graph gives
  the same simulator outputs as the unlowered one, bit for bit.
"""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from onnx2mcu import layers  # noqa: E402
from onnx2mcu.build import compile_model  # noqa: E402
from onnx2mcu.frontend import load  # noqa: E402
from onnx2mcu.graph_opt import OptimizeOptions, optimize  # noqa: E402
from onnx2mcu.runner import run_project_dir  # noqa: E402
from onnx2mcu.scheduler import schedule  # noqa: E402
from onnx2mcu.simulator import simulate  # noqa: E402

HAVE_QEMU = shutil.which("qemu-system-arm") is not None and shutil.which("arm-none-eabi-gcc") is not None
HAVE_CC = shutil.which("gcc") is not None and shutil.which("make") is not None
MODES = ["host"] + (["qemu"] if HAVE_QEMU else [])

warnings.filterwarnings("ignore", category=DeprecationWarning)


def run_c(project, mode: str) -> dict[str, np.ndarray]:
    """Build and run a compiled project on the host or QEMU; outputs by tensor name.

    (onnx2mcu.runner.run_project_dir also compares with onnxruntime, which
    cannot load models with onnx2mcu-domain nodes, so the custom form uses this.)"""
    from pathlib import Path

    from onnx2mcu.runner import _prepare, load_project_inputs, read_report
    from onnx2mcu.simulator.run_c import build, run_host, run_qemu
    from onnx2mcu.targets import get_board

    project = Path(project)
    report = read_report(project)
    board = get_board(report["board"]["name"])
    values = load_project_inputs(project, report, None)
    build_dir = _prepare(project, report, values, host=(mode == "host"))
    build(build_dir, "host" if mode == "host" else board)
    result = run_host(build_dir) if mode == "host" else run_qemu(build_dir, board, count_instructions=False)
    assert result.exit_code == 0, result.stderr
    wire = {o["wire_name"]: o["name"] for o in report["c_io"]["outputs"]}
    return {wire[k]: v.reshape(report["outputs"][wire[k]]["shape"]) for k, v in result.outputs().items()}


def ops_of(graph) -> set[str]:
    """The op types the graph runs, also inside TiledRows regions (onnx2mcu/ops/rows.py)."""
    from onnx2mcu.ops.rows import inner_nodes

    return {n.op_type for n, _, _ in inner_nodes(graph)}


def sim_outputs(graph, inputs):
    return simulate(graph, schedule(graph, "file-order"), inputs).outputs


def ort_outputs(proto, inputs):
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, inputs)))


class BinaryMLP(torch.nn.Module):
    """Binary layers chained through thresholds, a float-output binary layer, an adder layer + BN."""

    def __init__(self):
        super().__init__()
        # biases keep the binarized values away from 0: without one an even K can give a dot
        # product of exactly 0, which onnxruntime's float sum of +-alpha may round to +-1e-8
        # (a different sign), while the integer kernels give exactly 0 (+1)
        self.a = layers.BinaryLinear(40, 70)
        self.b = layers.BinaryLinear(70, 33)
        self.c = layers.BinaryLinear(33, 20, sign_op="sign")
        self.d = layers.AdderLinear(20, 8)
        self.bn = torch.nn.BatchNorm1d(8)

    def forward(self, x):
        h = self.c(self.b(self.a(x)))
        return self.bn(self.d(h))


class BinaryCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.b1 = layers.BinaryConv2d(3, 40, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(40)
        self.b2 = layers.BinaryConv2d(40, 24, 3, stride=2, padding=1, bias=False)
        self.a1 = layers.AdderConv2d(24, 12, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(12)

    def forward(self, x):
        return self.bn2(self.a1(self.b2(self.bn1(self.b1(x)))))


@pytest.mark.skipif(not HAVE_CC, reason="gcc/make not installed")
@pytest.mark.parametrize("form", ["standard", "custom"])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_binary_models_bit_exact_on_host_and_qemu(tmp_path, form, kind):
    torch.manual_seed(1)
    model = layers.randomize_batchnorms(BinaryMLP() if kind == "mlp" else BinaryCNN()).eval()
    x = torch.randn((6, 40) if kind == "mlp" else (1, 3, 10, 9))
    proto = layers.export(model, (x,), tmp_path / "m.onnx", form=form, input_names=["x"],
                          output_names=["y"])
    inputs = {"x": x.numpy()}
    result = compile_model(proto, tmp_path / "proj", board="mps2-an386", inputs=inputs)
    graph = result.graph
    assert ops_of(graph) <= {"PackSigns", "XnorGemm", "XnorConv", "AdderMatMul", "AdderConv", "Reshape"}
    bits_layers = [n for n in graph.nodes if n.attr("output") == "bits"]
    assert bits_layers, "the threshold chain was not formed"
    expected = simulate(graph, result.schedule, inputs).outputs["y"]
    with torch.no_grad():
        np.testing.assert_allclose(expected, model(x).numpy(), rtol=1e-4, atol=1e-4)
    if form == "standard":
        np.testing.assert_allclose(expected, ort_outputs(proto, inputs)["y"], rtol=1e-4, atol=1e-4)
    for mode in MODES if form == "standard" else ["host"]:  # same lowered ops in both forms
        got = run_c(tmp_path / "proj", mode)["y"]
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32), err_msg=mode)


@pytest.mark.skipif(not HAVE_CC, reason="gcc/make not installed")
def test_adder_resnet8(tmp_path):
    torch.manual_seed(0)
    model = layers.randomize_batchnorms(layers.ResNet8(adder=True)).eval()
    x = torch.randn(1, 3, 32, 32)
    proto = layers.export(model, (x,), None, form="standard", input_names=["x"], output_names=["y"])
    inputs = {"x": x.numpy()}
    result = compile_model(proto, tmp_path / "r8", board="mps2-an386", inputs=inputs)
    assert result.report["adder"]["adder_conv"] == 8  # 6 3x3 + 2 1x1 shortcuts
    assert result.report["adder"]["absorbed_affine"] == 8  # every batch norm after an adder conv
    assert "BatchNormalization" not in ops_of(result.graph)
    expected = simulate(result.graph, result.schedule, inputs).outputs["y"]
    np.testing.assert_allclose(expected, ort_outputs(proto, inputs)["y"], rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(expected, model(x).numpy(), rtol=1e-4, atol=1e-5)
    for mode in MODES[-1:]:  # QEMU when available (the small models above also run on the host)
        got = run_project_dir(str(tmp_path / "r8"), mode)["outputs"]["y"]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=mode)


def binary_bert(seq: int, vocab: int = 512, seed: int = 0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=512, max_position_embeddings=seq)
    bert = BertModel(config, add_pooling_layer=False).eval()
    layers.binarize_linears(bert.encoder)

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids):
            return self.bert(input_ids=input_ids, return_dict=True).last_hidden_state

    return Wrapper().eval()


@pytest.mark.skipif(not HAVE_CC, reason="gcc/make not installed")
def test_binary_bert_tiny(tmp_path):
    pytest.importorskip("transformers")
    seq = 32
    model = binary_bert(seq)
    ids = torch.randint(0, 512, (1, seq), generator=torch.Generator().manual_seed(0))
    inputs = {"input_ids": ids.numpy()}
    proto = layers.export(model, (ids,), None, form="standard", input_names=["input_ids"],
                          output_names=["hidden"])
    # a RAM budget below the untiled peak: row tiling then takes the binarized layers too
    result = compile_model(proto, tmp_path / "bert", board="mps2-an386", inputs=inputs, ram_budget=64 * 1024,
                           force=True)
    binary = result.report["binary"]
    assert binary["binary_layers"] == 12  # Q, K, V, attention out, FFN in/out x 2 layers
    assert binary["packed_weight_bytes"] * 32 == binary["float_weight_bytes"]
    assert "MatMul" in ops_of(result.graph)  # attention scores stay float
    # row tiling takes the binarized layers too: every layer runs in TiledRows regions
    assert sum(n.op_type == "TiledRows" for n in result.graph.nodes) >= 2
    expected = simulate(result.graph, result.schedule, inputs).outputs["hidden"]
    # lowering is exact: the unlowered graph simulates to the same bits
    unlowered = load(proto)
    np.testing.assert_array_equal(sim_outputs(unlowered, inputs)["hidden"], expected)
    for mode in MODES[-1:]:
        got = run_project_dir(str(tmp_path / "bert"), mode)["outputs"]["hidden"]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=mode)
    # custom form: same lowered graph up to names, same outputs
    custom = layers.export(model, (ids,), None, form="custom", input_names=["input_ids"],
                           output_names=["hidden"])
    graph, report = optimize(load(custom))
    assert report["binary"]["binary_layers"] == 12
    np.testing.assert_array_equal(sim_outputs(graph, inputs)["hidden"], expected)


def test_dynamo_export_patterns_lower():
    """The dynamo exporter's unfold (Pad/Gather/Transpose) and Sign patterns are recognised too."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(layers.AdderConv2d(4, 8, 3, stride=2, padding=1), torch.nn.BatchNorm2d(8),
                                layers.BinaryConv2d(8, 6, 3, padding=1, sign_op="sign"),
                                layers.AdderConv2d(6, 5, (3, 1), dilation=(1, 2), padding=(1, 0)))
    layers.randomize_batchnorms(model).eval()
    x = torch.randn(1, 4, 9, 11)
    proto = layers.export(model, (x,), None, form="standard", dynamo=True, input_names=["x"])
    graph, report = optimize(load(proto))
    # the Sign layer's input (an adder conv + BN) may be exactly 0: the exact ternary form
    # (two bit-planes, graph_opt/binarize.py); --binary-sign-zero plus-one gives one plane
    assert ops_of(graph) == {"AdderConv", "PackSigns", "XnorConv", "Neg", "Sub", "Mul", "Add"}
    assert report["adder"]["adder_conv"] == 2 and report["binary"]["binary_layers"] == 1
    assert report["binary"]["sign_zero_exact_layers"] == 1
    out = sim_outputs(graph, {"x": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(next(iter(out.values())), model(x).numpy(), rtol=1e-4, atol=1e-5)
    fast, report = optimize(load(proto), OptimizeOptions(binary_sign_zero="plus-one"))
    assert ops_of(fast) == {"AdderConv", "PackSigns", "XnorConv"}
    assert report["binary"]["sign_zero"] == "plus-one" and report["optimize_notes"]
