"""Binary lowering keeps ONNX semantics: Sign(0) = 0 unless --binary-sign-zero plus-one.

Plain PyTorch models (no onnx2mcu.layers) whose binary layers take torch.sign
of tensors that are exactly 0 in many places (after a ReLU, a Tanh of a zero,
a convolution of a zero region with zero padding, a graph input with zeros)
compile to XNOR kernels and still match onnxruntime within float tolerance:
in the simulator and through the generated C on the host.  With the opt-in
mapping the report says it was used, and the outputs show why it is opt-in.
"""
from __future__ import annotations

import json
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

HAVE_CC = shutil.which("gcc") is not None and shutil.which("make") is not None
RTOL, ATOL = 1e-4, 1e-4

warnings.filterwarnings("ignore", category=DeprecationWarning)


def _signed(shape, generator):
    return torch.nn.Parameter(torch.randn(*shape, generator=generator))


class SignAfterRelu(torch.nn.Module):
    """The issue's model: torch.sign(x) @ torch.sign(W).t() * alpha + b after a ReLU."""

    def __init__(self, g):
        super().__init__()
        self.fc = torch.nn.Linear(20, 48)
        self.w = _signed((24, 48), g)
        self.alpha = torch.nn.Parameter(torch.rand(24, generator=g) + 0.5)
        self.b = _signed((24,), g)

    def forward(self, x):
        h = torch.relu(self.fc(x))
        return torch.sign(h) @ torch.sign(self.w).t() * self.alpha + self.b


class SignAfterTanh(torch.nn.Module):
    """tanh(z) is 0 exactly where z is: a bias-free layer on rows of zeros."""

    def __init__(self, g):
        super().__init__()
        self.fc = torch.nn.Linear(20, 33, bias=False)
        self.w = _signed((16, 33), g)

    def forward(self, x):
        return torch.sign(torch.tanh(self.fc(x))) @ torch.sign(self.w).t() * 0.25


class SignAfterConv(torch.nn.Module):
    """A zero-padded conv (no bias) of an image with a zero region, then a binary conv."""

    def __init__(self, g):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.w = _signed((6, 8, 3, 3), g)
        self.alpha = torch.nn.Parameter(torch.rand(6, 1, 1, generator=g) + 0.5)
        self.b = _signed((6, 1, 1), g)

    def forward(self, x):
        h = torch.sign(self.conv(x))
        y = torch.nn.functional.conv2d(h, torch.sign(self.w), padding=1)
        return y * self.alpha + self.b


class SignOfInput(torch.nn.Module):
    """Sign of the graph input itself, two binary layers deep (the second layer's input is the
    first's output: with a bias it is provably never 0, so one bit-plane suffices)."""

    def __init__(self, g):
        super().__init__()
        self.w1 = _signed((40, 30), g)
        self.b1 = _signed((40,), g)
        self.w2 = _signed((12, 40), g)

    def forward(self, x):
        h = torch.sign(x) @ torch.sign(self.w1).t() * 0.5 + self.b1
        return torch.sign(h) @ torch.sign(self.w2).t()


def _inputs(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "conv":
        x = rng.standard_normal((1, 3, 10, 9)).astype(np.float32)
        x[:, :, 4:, :5] = 0.0  # conv outputs there are exactly 0
        return x
    if kind == "input":
        x = rng.standard_normal((6, 30)).astype(np.float32)
        x[rng.random(x.shape) < 0.4] = 0.0
        x[0, :3] = -0.0
        return x
    x = rng.standard_normal((6, 20)).astype(np.float32)
    if kind == "tanh":
        x[::2] = 0.0
    return x


MODELS = {"relu": SignAfterRelu, "tanh": SignAfterTanh, "conv": SignAfterConv, "input": SignOfInput}


def _case(kind: str):
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    model = MODELS[kind](g).eval()
    x = _inputs(kind, np.random.default_rng(5))
    proto = layers.export(model, (torch.from_numpy(x),), None, form="standard", input_names=["x"],
                          output_names=["y"])
    return proto, {"x": x}


def _ort(proto, inputs) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["y"], inputs)[0]


def _sim(graph, inputs) -> np.ndarray:
    return simulate(graph, schedule(graph, "file-order"), inputs).outputs["y"]


def _exact_zeros_reach_sign(proto, inputs) -> bool:
    """The test means something: some Sign in the ONNX model sees an exact 0."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    signs = [n.input[0] for n in probe.graph.node if n.op_type == "Sign"]
    del probe.graph.output[:]
    probe.graph.output.extend([onnx.helper.make_empty_tensor_value_info(s) for s in signs])
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    return any(np.count_nonzero(v == 0) for v in sess.run(None, inputs))


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_sign_layers_match_onnxruntime_by_default(kind):
    proto, inputs = _case(kind)
    assert _exact_zeros_reach_sign(proto, inputs)
    graph, report = optimize(load(proto))
    ops = {n.op_type for n in graph.nodes}
    assert {"PackSigns"} <= ops and ops & {"XnorGemm", "XnorConv"}, ops  # still binary kernels
    assert "Sign" not in ops, ops  # every Sign layer lowered
    assert report["binary"]["binary_layers"] == (2 if kind == "input" else 1)
    assert report["binary"]["sign_zero_exact_layers"] >= 1
    assert "sign_zero" not in report["binary"] and "optimize_notes" not in report
    np.testing.assert_allclose(_sim(graph, inputs), _ort(proto, inputs), rtol=RTOL, atol=ATOL)


def test_nonzero_proof_gives_one_bit_plane():
    """SignOfInput's second layer reads a biased binary layer's output: proven never 0."""
    proto, inputs = _case("input")
    graph, report = optimize(load(proto))
    assert report["binary"]["binary_layers"] == 2
    assert report["binary"]["sign_zero_exact_layers"] == 1  # the graph input may be 0
    assert report["binary"]["sign_inputs_proven_nonzero"] == 1
    np.testing.assert_allclose(_sim(graph, inputs), _ort(proto, inputs), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_plus_one_is_opt_in_and_reported(kind):
    proto, inputs = _case(kind)
    graph, report = optimize(load(proto), OptimizeOptions(binary_sign_zero="plus-one"))
    ops = {n.op_type for n in graph.nodes}
    assert not ops & {"Neg", "Sub"}  # one bit-plane everywhere
    layers_used = report["binary"]["sign_zero_plus_one_layers"]
    assert report["binary"]["sign_zero"] == "plus-one" and layers_used
    assert any("plus-one" in note for note in report["optimize_notes"])
    got, want = _sim(graph, inputs), _ort(proto, inputs)
    if kind in ("relu", "tanh", "input"):  # zeros mapped to +1 move these outputs visibly
        assert not np.allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.skipif(not HAVE_CC, reason="gcc/make not installed")
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_generated_c_matches_onnxruntime(tmp_path, kind):
    proto, inputs = _case(kind)
    result = compile_model(proto, tmp_path / "proj", board="host", inputs=inputs)
    assert result.report["binary"]["sign_zero_exact_layers"] >= 1
    ran = run_project_dir(str(tmp_path / "proj"), "host")
    np.testing.assert_allclose(ran["outputs"]["y"], _ort(proto, inputs), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ran["outputs"]["y"], _sim(result.graph, inputs), rtol=1e-5, atol=1e-5)


def test_cli_flag_reports_the_mapping(tmp_path, capsys):
    import onnx

    from onnx2mcu.cli import main

    proto, inputs = _case("relu")
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    np.savez(tmp_path / "in.npz", **inputs)
    args = ["simulate", str(path), "--inputs", str(tmp_path / "in.npz"), "--json",
            "--scheduler", "file-order"]
    assert main(args) == 0
    exact = json.loads(capsys.readouterr().out)
    assert "sign_zero" not in exact["binary"]
    # the opt-in mapping changes results (Sign(0) becomes +1): simulate's onnxruntime check
    # fails and says so with exit 1, as for any output outside tolerance
    assert main(args + ["--binary-sign-zero", "plus-one"]) == 1
    captured = capsys.readouterr()
    fast = json.loads(captured.out)
    assert fast["agreement"]["ok"] is False
    assert fast["binary"]["sign_zero"] == "plus-one" and fast["optimize_notes"]
    assert "onnx2mcu: note: binary: --binary-sign-zero plus-one" in captured.err


def test_unknown_mapping_is_a_user_error():
    from onnx2mcu.errors import UserError

    with pytest.raises(UserError, match="binary-sign-zero"):
        OptimizeOptions(binary_sign_zero="zero")
