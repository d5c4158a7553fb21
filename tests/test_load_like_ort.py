"""Loading what onnxruntime loads (issue 12, item 4): IR version 3 graphs whose initializers
are also graph inputs, external data, weights made by constant-producing nodes, and the
light_*.onnx models shipped inside the installed onnx package, through the simulator."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import onnx2mcu
from onnx2mcu.frontend import load

LIGHT_DIR = Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data" / "light"
LIGHT_MODELS = sorted(p.name for p in LIGHT_DIR.glob("light_*.onnx")) if LIGHT_DIR.is_dir() else []


def _ir3_model() -> onnx.ModelProto:
    """y = x @ w + b with w and b listed as graph inputs too (how IR version 3 files are)."""
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    b = np.array([0.5, -1.0, 2.0], np.float32)
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"]), h.make_node("Add", ["m", "b"], ["y"])]
    inputs = [h.make_tensor_value_info("x", T.FLOAT, [2, 4]),
              h.make_tensor_value_info("w", T.FLOAT, [4, 3]),
              h.make_tensor_value_info("b", T.FLOAT, [3])]
    graph = h.make_graph(nodes, "ir3", inputs, [h.make_tensor_value_info("y", T.FLOAT, [2, 3])],
                         [nh.from_array(w, "w"), nh.from_array(b, "b")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 9)])
    model.ir_version = 3
    return model


def test_ir3_initializers_listed_as_inputs_are_constants():
    graph = load(_ir3_model())
    assert graph.inputs == ["x"]
    assert graph.tensors["w"].is_const and graph.tensors["b"].is_const
    assert any("graph inputs with an initializer are constants" in note for note in graph.notes)
    report = onnx2mcu.simulate(_ir3_model())
    assert report.max_scaled_err <= 1e-6


def test_a_bound_initializer_input_stays_an_input():
    graph = load(_ir3_model(), {"b": [3]})
    assert sorted(graph.inputs) == ["b", "x"]
    assert not graph.tensors["b"].is_const and graph.tensors["w"].is_const


def test_external_data(tmp_path):
    model = _ir3_model()
    model.ir_version = 8
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)
    assert (tmp_path / "ext.data").is_file()
    graph = load(str(path))
    np.testing.assert_array_equal(graph.tensors["w"].data,
                                  np.arange(12, dtype=np.float32).reshape(4, 3) / 10)
    assert onnx2mcu.simulate(str(path)).max_scaled_err <= 1e-6


def test_weights_from_constant_producing_nodes():
    nodes = [h.make_node("Constant", [], ["shape"], value_ints=[4, 3]),
             h.make_node("ConstantOfShape", ["shape"], ["w"],
                         value=nh.from_array(np.array([0.25], np.float32))),
             h.make_node("Constant", [], ["b"], value_floats=[1.0, 2.0, 3.0]),
             h.make_node("MatMul", ["x", "w"], ["m"]), h.make_node("Add", ["m", "b"], ["y"])]
    graph = h.make_graph(nodes, "made", [h.make_tensor_value_info("x", T.FLOAT, [2, 4])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 3])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    ir = load(model)
    assert [n.op_type for n in ir.nodes] == ["MatMul", "Add"]
    assert onnx2mcu.simulate(model).max_scaled_err <= 1e-6


@pytest.mark.slow
@pytest.mark.skipif(not LIGHT_MODELS, reason=f"no light_*.onnx models in {LIGHT_DIR}")
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_in_the_simulator(name):
    # densenet121's activations (321 MB, checked with about 4 copies) pass the default 1 GiB
    # guard only when the user raises it, as the error message says (--max-tensor-bytes)
    report = onnx2mcu.simulate(str(LIGHT_DIR / name), scheduler="file-order",
                               max_tensor_bytes=4 << 30)
    assert report.agreement is not None
    assert report.max_scaled_err <= 1e-4
