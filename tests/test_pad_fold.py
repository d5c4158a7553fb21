"""graph_opt/pad_fold.py: an explicit Pad of real 0 folds into the Conv reading it (exact).

Float: the folded model gives onnxruntime's outputs; a Pad of another value, a reflect Pad or a
Pad with two readers stays.  int8: MCUNet-VWW's three Pad -> depthwise Conv pairs fold, the
peak drops from 161,472 B (the padded 48x42x42 tensor beside its input) to 96,000 B, and the
outputs stay those of the unfolded model bit for bit.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx2mcu.pipeline import Options, run
from onnx2mcu.simulator import simulate

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"


def pad_conv_model(pad_value: float = 0.0, mode: str = "constant", second_reader: bool = False,
                   conv_pads=(0, 0, 0, 0)) -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    pads = numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "pads")
    value = numpy_helper.from_array(np.array(pad_value, np.float32), "value")
    nodes = [helper.make_node("Pad", ["x", "pads", "value"], ["p"], mode=mode),
             helper.make_node("Conv", ["p", "w"], ["y"], pads=list(conv_pads), strides=[2, 1])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, (9 + conv_pads[0] + conv_pads[2]) // 2 + 1, 9 + conv_pads[1] + conv_pads[3]])]
    if second_reader:
        nodes.append(helper.make_node("Relu", ["p"], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3, 12, 11]))
    graph = helper.make_graph(nodes, "pad_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                 [1, 3, 9, 8])],
                              outputs, [w, pads, value])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _compile(model: onnx.ModelProto, tmp_path: Path):
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    result = run(path, Options(stop_after="schedule", scheduler="greedy"))
    return path, result


def _ort(path: Path, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


@pytest.mark.parametrize("conv_pads", [(0, 0, 0, 0), (1, 0, 0, 1)])
def test_float_pad_folds_into_the_conv_and_keeps_the_outputs(tmp_path, conv_pads):
    path, result = _compile(pad_conv_model(conv_pads=conv_pads), tmp_path)
    ops = [n.op_type for n in result.graph.nodes]
    assert ops == ["Conv"], ops
    (conv,) = result.graph.nodes
    assert conv.attrs["pads"] == [1 + conv_pads[0], 2 + conv_pads[1], 2 + conv_pads[2], 1 + conv_pads[3]]
    assert len(result.optimization["pad_fold"]["folded"]) == 1
    x = np.random.default_rng(0).standard_normal((1, 3, 9, 8)).astype(np.float32)
    got = simulate(result.graph, result.schedule, {"x": x}).outputs["y"]
    np.testing.assert_allclose(got, _ort(path, x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{"pad_value": 1.5}, {"mode": "reflect"}, {"second_reader": True}])
def test_pads_that_are_not_a_conv_zero_padding_stay(tmp_path, kwargs):
    path, result = _compile(pad_conv_model(**kwargs), tmp_path)
    assert "Pad" in [n.op_type for n in result.graph.nodes]
    x = np.random.default_rng(1).standard_normal((1, 3, 9, 8)).astype(np.float32)
    got = simulate(result.graph, result.schedule, {"x": x}).outputs
    for name, want in zip([o for o in result.graph.outputs], _ort(path, x)):
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-5)


@pytest.mark.shared
def test_mcunet_int8_pads_fold_and_the_peak_drops(monkeypatch):
    path = SHARED / "mcunet" / "mcunet_vww_qdq.onnx"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    # without the memory rewrites: the in-place depthwise conv (tests/test_inplace_int8.py)
    # takes the peak further down, to 89,600 B
    folded = run(path, Options(stop_after="schedule", scheduler="greedy", rewrites="none"))
    assert len(folded.optimization["pad_fold"]["folded"]) == 3
    assert folded.schedule.peak_bytes == 96_000

    from onnx2mcu.graph_opt import pipeline
    passes = [(k, f) for k, f in pipeline.PASSES if k != "pad_fold"]
    monkeypatch.setattr(pipeline, "PASSES", passes)
    unfolded = run(path, Options(stop_after="schedule", scheduler="greedy", rewrites="none"))
    assert unfolded.schedule.peak_bytes == 161_472
    (x_name,), (y_name,) = folded.graph.inputs, folded.graph.outputs
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = rng.random(folded.graph.tensors[x_name].shape, dtype=np.float32)
        a = simulate(folded.graph, folded.schedule, {x_name: x}).outputs[y_name]
        b = simulate(unfolded.graph, unfolded.schedule, {x_name: x}).outputs[y_name]
        assert a.tobytes() == b.tobytes()
