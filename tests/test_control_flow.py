"""Control flow that is static on an MCU (frontend/control_flow.py, issue 12 item 2): If on a
condition that folds (from shapes, or from --input-value), Loop with a constant trip count,
Scan over a static length; each against onnxruntime, and compiled to C on the host; what
stays data-dependent gets one error naming the node and what to bind."""
from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import onnx2mcu
from onnx2mcu.cli import main
from onnx2mcu.errors import UserError
from onnx2mcu.frontend import load

HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
OPSET = [h.make_opsetid("", 17)]


def _branch(name: str, op: str, other: str) -> onnx.GraphProto:
    """y = x OP other, where x and `other` are names of the enclosing graph (outer scope)."""
    return h.make_graph([h.make_node(op, ["x", other], ["y_" + name], name=name + "_op")], name, [],
                        [h.make_tensor_value_info("y_" + name, T.FLOAT, [4, 3])])


def _if_on_shape_model() -> onnx.ModelProto:
    """If (rows of x == 4): x + c else x * 2 — static once x's shape is bound."""
    c = nh.from_array(np.full((1, 3), 0.5, np.float32), "c")
    two = nh.from_array(np.array(2.0, np.float32), "two")
    nodes = [h.make_node("Shape", ["x"], ["shape"], name="shape"),
             h.make_node("Gather", ["shape", "zero"], ["rows"], name="rows", axis=0),
             h.make_node("Equal", ["rows", "four"], ["cond"], name="cond"),
             h.make_node("If", ["cond"], ["y"], name="branch",
                         then_branch=_branch("then", "Add", "c"),
                         else_branch=_branch("else", "Mul", "two"))]
    graph = h.make_graph(nodes, "if_shape", [h.make_tensor_value_info("x", T.FLOAT, ["n", 3])],
                         [h.make_tensor_value_info("y", T.FLOAT, [4, 3])],
                         [c, two, nh.from_array(np.array(0, np.int64), "zero"),
                          nh.from_array(np.array(4, np.int64), "four")])
    return h.make_model(graph, opset_imports=OPSET)


def _if_on_input_model() -> onnx.ModelProto:
    """If (rate > 8000): x + c else x * 2, with `rate` a scalar input."""
    c = nh.from_array(np.full((1, 3), 0.5, np.float32), "c")
    two = nh.from_array(np.array(2.0, np.float32), "two")
    nodes = [h.make_node("Greater", ["rate", "limit"], ["cond"], name="cond"),
             h.make_node("If", ["cond"], ["y"], name="by_rate",
                         then_branch=_branch("then", "Add", "c"),
                         else_branch=_branch("else", "Mul", "two"))]
    graph = h.make_graph(nodes, "if_input", [h.make_tensor_value_info("x", T.FLOAT, [4, 3]),
                                             h.make_tensor_value_info("rate", T.FLOAT, [])],
                         [h.make_tensor_value_info("y", T.FLOAT, [4, 3])],
                         [c, two, nh.from_array(np.array(8000.0, np.float32), "limit")])
    return h.make_model(graph, opset_imports=OPSET)


def _loop_model(trip: int = 3) -> onnx.ModelProto:
    """s = x; for i in range(trip): s = s * w + float(i); scan output: each s."""
    body = h.make_graph(
        [h.make_node("Cast", ["i"], ["fi"], name="cast", to=T.FLOAT),
         h.make_node("Mul", ["s_in", "w"], ["sw"], name="mul"),
         h.make_node("Add", ["sw", "fi"], ["s_out"], name="add"),
         h.make_node("Identity", ["cond_in"], ["cond_out"], name="keep"),
         h.make_node("Identity", ["s_out"], ["scan"], name="emit")],
        "body", [h.make_tensor_value_info("i", T.INT64, []),
                 h.make_tensor_value_info("cond_in", T.BOOL, []),
                 h.make_tensor_value_info("s_in", T.FLOAT, [2, 3])],
        [h.make_tensor_value_info("cond_out", T.BOOL, []),
         h.make_tensor_value_info("s_out", T.FLOAT, [2, 3]),
         h.make_tensor_value_info("scan", T.FLOAT, [2, 3])])
    nodes = [h.make_node("Loop", ["trip", "", "x"], ["s", "all"], name="loop", body=body)]
    graph = h.make_graph(nodes, "loop", [h.make_tensor_value_info("x", T.FLOAT, [2, 3])],
                         [h.make_tensor_value_info("s", T.FLOAT, [2, 3]),
                          h.make_tensor_value_info("all", T.FLOAT, [trip, 2, 3])],
                         [nh.from_array(np.array(trip, np.int64), "trip"),
                          nh.from_array(np.linspace(0.5, 1.5, 6, dtype=np.float32).reshape(2, 3), "w")])
    return h.make_model(graph, opset_imports=OPSET)


def _scan_model() -> onnx.ModelProto:
    """Running sum over the 5 rows of x (scan axis 0), and the reversed running max."""
    body = h.make_graph(
        [h.make_node("Add", ["acc_in", "row"], ["acc_out"], name="add"),
         h.make_node("Max", ["acc_out", "floor"], ["seen"], name="max")],
        "scan_body", [h.make_tensor_value_info("acc_in", T.FLOAT, [3]),
                      h.make_tensor_value_info("row", T.FLOAT, [3])],
        [h.make_tensor_value_info("acc_out", T.FLOAT, [3]),
         h.make_tensor_value_info("seen", T.FLOAT, [3])])
    nodes = [h.make_node("Scan", ["init", "x"], ["total", "steps"], name="scan", body=body,
                         num_scan_inputs=1, scan_input_directions=[1])]
    graph = h.make_graph(nodes, "scan", [h.make_tensor_value_info("x", T.FLOAT, [5, 3])],
                         [h.make_tensor_value_info("total", T.FLOAT, [3]),
                          h.make_tensor_value_info("steps", T.FLOAT, [5, 3])],
                         [nh.from_array(np.zeros(3, np.float32), "init"),
                          nh.from_array(np.zeros(3, np.float32), "floor")])
    return h.make_model(graph, opset_imports=OPSET)


def _no_control_flow(graph) -> None:
    assert not {n.op_type for n in graph.nodes} & {"If", "Loop", "Scan"}


def test_if_folds_once_the_shape_is_bound():
    graph = load(_if_on_shape_model(), {"x": [4, 3]})
    _no_control_flow(graph)
    assert [n.op_type for n in graph.nodes] == ["Add"]  # the then branch, reading outer 'c'
    report = onnx2mcu.simulate(_if_on_shape_model(), input_shapes={"x": [4, 3]})
    assert report.max_scaled_err <= 1e-6


def test_if_on_a_scalar_input_needs_input_value():
    with pytest.raises(UserError, match=r"If 'by_rate'.*--input-value rate=VALUE"):
        load(_if_on_input_model())
    for rate, op in ((16000.0, "Add"), (4000.0, "Mul")):
        graph = load(_if_on_input_model(), input_values={"rate": rate})
        assert [n.op_type for n in graph.nodes] == [op] and graph.inputs == ["x"]
        report = onnx2mcu.simulate(_if_on_input_model(), input_values={"rate": rate})
        assert report.max_scaled_err <= 1e-6


def test_cli_input_value(tmp_path, capsys):
    path = tmp_path / "if_input.onnx"
    onnx.save(_if_on_input_model(), path)
    assert main(["simulate", str(path)]) == 2
    assert "--input-value rate=VALUE" in capsys.readouterr().err
    assert main(["simulate", str(path), "--input-value", "rate=16000", "--json"]) == 0
    assert main(["simulate", str(path), "--input-value", "rate"]) == 2


def test_loop_with_a_constant_trip_count_is_unrolled():
    graph = load(_loop_model())
    _no_control_flow(graph)
    assert sum(n.op_type == "Mul" for n in graph.nodes) == 3
    assert onnx2mcu.simulate(_loop_model()).max_rel_err <= 1e-6


def test_loop_with_a_data_dependent_trip_count_is_named():
    model = _loop_model()
    graph = model.graph
    graph.input.append(h.make_tensor_value_info("n", T.INT64, []))
    graph.node[0].input[0] = "n"
    with pytest.raises(UserError, match=r"Loop 'loop': its trip count 'n' is not a constant"):
        load(model)


def test_scan_is_unrolled():
    graph = load(_scan_model())
    _no_control_flow(graph)
    assert onnx2mcu.simulate(_scan_model()).max_rel_err <= 1e-6


@pytest.mark.skipif(not HAVE_HOST, reason="gcc / make not installed")
@pytest.mark.parametrize("make", [_loop_model, _scan_model])
def test_unrolled_control_flow_runs_in_c(tmp_path, make):
    from onnx2mcu.build import compile_model
    from onnx2mcu.runner import run_project_dir

    project = compile_model(make(), tmp_path / "cf").out_dir
    assert run_project_dir(str(project), "host")["max_rel_err"] <= 1e-6
