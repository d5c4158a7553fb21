"""Real models end to end: `onnx2mcu simulate MODEL --json` agrees with onnxruntime.

The MLPerf Tiny and MCUNet models live in ../shared/models next to the
repository; the built-in examples need nothing.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from onnx2mcu.cli import main
from onnx2mcu.examples import EXAMPLES
from onnx2mcu.ops import lookup

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS_DIR = SHARED / "models"
MAX_REL_ERR = 1e-4
KEYS = ("peak_bytes", "arena_bytes", "weights_bytes", "peak_step", "max_abs_err", "max_rel_err",
        "schedule")

FLOAT_MODELS = [
    "mlperf_tiny/ad01_fp32.onnx",
    "mlperf_tiny/kws_ref_model_float32.onnx",
    "mlperf_tiny/pretrainedResnet.onnx",
    "mlperf_tiny/vww_96_float.onnx",
    "mcunet/mcunet_vww_deq.onnx",
]
QDQ_MODELS = ["mlperf_tiny/kws_ref_model.onnx", "mcunet/mcunet_vww_qdq.onnx"]
QDQ_SUPPORTED = lookup("QuantizeLinear") is not None and lookup("DequantizeLinear") is not None


def shared_model(relative: str) -> Path:
    path = MODELS_DIR / relative
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared/ folder next to the repository holds the models)")
    return path


def simulate_json(argv: list[str], capsys) -> dict:
    capsys.readouterr()
    code = main(["simulate", *argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def check_report(data: dict, max_rel_err: float | None = MAX_REL_ERR) -> None:
    for key in KEYS:
        assert key in data, f"--json lacks '{key}'"
    assert data["max_scaled_err"] is not None
    assert max_rel_err is None or data["max_scaled_err"] <= max_rel_err, data["max_scaled_err"]
    assert 0 <= data["max_abs_err"] < float("inf")
    assert data["arena_bytes"] >= data["peak_bytes"] > 0
    assert data["weights_bytes"] > 0
    schedule = data["schedule"]
    assert isinstance(schedule, list) and len(schedule) == data["ops"] > 0
    assert all(set(entry) >= {"node", "op"} for entry in schedule)
    assert len({entry["node"] for entry in schedule}) == len(schedule), "node names repeat"
    assert 0 <= data["peak_step"] < len(schedule)
    if "live_bytes" in data:
        assert max(data["live_bytes"]) == data["peak_bytes"]
        assert data["live_bytes"][data["peak_step"]] == data["peak_bytes"]


@pytest.mark.parametrize("relative", FLOAT_MODELS)
def test_float_model(relative, capsys):
    data = simulate_json([str(shared_model(relative))], capsys)
    check_report(data)
    # tf2onnx leaves the batch dim dynamic: the frontend binds it and says so
    assert any("bound to 1" in note for note in data["notes"]) or "mcunet" in relative


@pytest.mark.skipif(not QDQ_SUPPORTED, reason="QuantizeLinear/DequantizeLinear are not registered")
@pytest.mark.parametrize("relative", QDQ_MODELS)
def test_qdq_model(relative, capsys):
    """int8 with --requant float: within one output step of onnxruntime (tests/test_int8_models.py
    has the bit-exact comparison with TFLite Micro of the default --requant fixed)."""
    from onnx2mcu.frontend import load

    graph = load(str(shared_model(relative)))
    (y,) = graph.outputs
    if graph.tensors[y].quant is not None:  # int8 output: one step is 1
        step = 1.0
    else:  # a float output after its DequantizeLinear: one step is its scale
        step = float(graph.tensors[graph.producers()[y].inputs[1]].data)
    # the criterion, given to simulate's own check: one output step
    data = simulate_json([str(shared_model(relative)), "--requant", "float", "--int8-tolerance", "1",
                          "--atol", repr(1.001 * step), "--rtol", "0"], capsys)
    check_report(data, max_rel_err=None)
    assert data["max_abs_err"] <= 1.001 * step


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example(name, capsys):
    data = simulate_json(["--example", name], capsys)
    check_report(data)
    assert data["model"] == name


def test_example_outputs():
    """The examples have the documented interfaces."""
    from onnx2mcu.frontend import load
    from onnx2mcu.examples import build_example

    bert = load(build_example("bert-tiny"))
    assert {n: bert.tensors[n].shape for n in bert.inputs} == {"input_ids": (1, 128),
                                                               "attention_mask": (1, 128)}
    assert {n: bert.tensors[n].shape for n in bert.outputs} == {"last_hidden_state": (1, 128, 128),
                                                                "pooler_output": (1, 128)}
    cnn = load(build_example("cnn"))
    assert cnn.tensors[cnn.inputs[0]].shape == (1, 3, 32, 32)
    assert {node.op_type for node in cnn.nodes} >= {"Conv", "GlobalAveragePool", "Gemm", "Softmax"}
    assert build_example("cnn").SerializeToString() == build_example("cnn").SerializeToString()


def test_unknown_example(capsys):
    assert main(["simulate", "--example", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("onnx2mcu: error:") and "bert-tiny" in err and "cnn" in err


def test_simulate_as_a_command():
    """The installed entry point, in a fresh process: one JSON object on stdout."""
    path = shared_model(FLOAT_MODELS[0])
    proc = subprocess.run([sys.executable, "-m", "onnx2mcu.cli", "simulate", str(path), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    check_report(json.loads(proc.stdout))
