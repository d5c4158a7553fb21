"""The frontend: folding, binding of dims, no-op removal, opset lifting, and one-line errors."""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx2mcu
from onnx2mcu.cli import main
from onnx2mcu.errors import UserError
from onnx2mcu.examples import build_example
from onnx2mcu.frontend import load

FOLDABLE = {"Shape", "Gather", "Concat", "ConstantOfShape", "Cast", "Range", "Equal", "Where", "Expand",
            "DequantizeLinear", "Unsqueeze", "Constant", "Identity", "Dropout"}


def make_model(nodes, inputs, outputs, inits=(), opset=17, name="test") -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=8 if opset >= 9 else 7)
    onnx.checker.check_model(model)
    return model


def const(name, value, dtype=None):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def fvalue(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def save(model, tmp_path, name="model.onnx") -> str:
    path = tmp_path / name
    onnx.save(model, str(path))
    return str(path)


def run_cli(argv, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    assert lines[0].startswith("onnx2mcu: error:"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def reference_outputs(model: onnx.ModelProto, inputs: dict) -> dict:
    """onnxruntime without its fusions: at ORT_ENABLE_EXTENDED it rewrites DequantizeLinear+MatMul
    into a dynamically quantized kernel that is ~0.5% off the float result."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feed = {i.name: inputs[i.name] for i in session.get_inputs()}
    return dict(zip(names, session.run(names, feed)))


def assert_matches_onnxruntime(model, input_shapes=None, inputs=None, tol=1e-5):
    report = onnx2mcu.simulate(model, input_shapes=input_shapes, inputs=inputs,
                               check_onnxruntime=False)
    expected = reference_outputs(model, report.inputs)
    assert set(expected) == set(report.result.outputs)
    for name, want in expected.items():
        got = report.result.outputs[name]
        assert got.shape == want.shape, name
        scale = max(float(np.max(np.abs(want))), 1e-30)
        assert float(np.max(np.abs(got.astype(np.float64) - want))) <= tol * scale, name
    return report


# ----- folding --------------------------------------------------------------------------------
def shape_chain_model() -> onnx.ModelProto:
    """Everything but Reshape, Mul and MatMul depends only on constants and static shapes."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape_x"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="batch_dim", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsqueeze"),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["r"], name="flatten"),
        helper.make_node("Shape", ["r"], ["rs"], name="shape_r"),
        helper.make_node("ConstantOfShape", ["rs"], ["ones"], name="ones",
                         value=numpy_helper.from_array(np.array([1.0], dtype=np.float32))),
        helper.make_node("Gather", ["rs", "one_i"], ["len"], name="length", axis=0),
        helper.make_node("Range", ["zero_s", "len", "one_s"], ["rg"], name="range"),
        helper.make_node("Equal", ["rg", "five"], ["eq"], name="equal"),
        helper.make_node("Where", ["eq", "two", "ones"], ["w"], name="where"),
        helper.make_node("Cast", ["w"], ["wc"], name="cast", to=TensorProto.FLOAT),
        helper.make_node("Expand", ["wc", "rs"], ["e"], name="expand"),
        helper.make_node("Mul", ["r", "e"], ["m"], name="mul"),
        helper.make_node("DequantizeLinear", ["wq", "scale", "zp"], ["wf"], name="dequant"),
        helper.make_node("MatMul", ["m", "wf"], ["y"], name="matmul"),
    ]
    inits = [const("zero", 0, np.int64), const("axes0", [0], np.int64),
             const("minus_one", [-1], np.int64), const("one_i", 1, np.int64),
             const("zero_s", 0, np.int64), const("one_s", 1, np.int64), const("five", 5, np.int64),
             const("two", 2.0, np.float32),
             const("wq", rng.integers(-127, 128, (48, 8)), np.int8),
             const("scale", 0.02, np.float32), const("zp", 0, np.int8)]
    return make_model(nodes, [fvalue("x", ["N", 3, 4, 4])], [fvalue("y", ["N", 8])], inits)


def test_folding_removes_shape_and_constant_chains():
    model = shape_chain_model()
    graph = load(model)
    ops = [node.op_type for node in graph.nodes]
    assert sorted(ops) == ["MatMul", "Mul", "Reshape"], ops
    assert graph.tensors["y"].shape == (1, 8)
    # the dequantized weight is its int8 constant with its QuantParams (frontend/qdq.py) ...
    matmul = next(n for n in graph.nodes if n.op_type == "MatMul")
    weight = graph.tensors[matmul.inputs[1]]
    assert weight.is_const and weight.data.dtype == np.int8 and weight.shape == (48, 8)
    assert weight.quant is not None and float(weight.quant.scale) == np.float32(0.02)
    # ... and a float constant again once graph_opt runs the MatMul in float
    from onnx2mcu.graph_opt import optimize

    optimize(graph)
    weight = graph.tensors[matmul.inputs[1]]
    assert weight.is_const and weight.data.dtype == np.float32 and weight.quant is None
    assert_matches_onnxruntime(model)


def test_folding_evaluates_ops_the_onnx_reference_gets_wrong():
    """GatherElements on constants (onnx's reference evaluator fails on it) still folds."""
    nodes = [helper.make_node("GatherElements", ["table", "idx"], ["g"], axis=1),
             helper.make_node("Cast", ["g"], ["gf"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["x", "gf"], ["y"])]
    inits = [const("table", np.zeros((1, 16)), np.int64),
             const("idx", np.arange(8)[None, :], np.int64)]
    model = make_model(nodes, [fvalue("x", [1, 8])], [fvalue("y", [1, 8])], inits)
    assert [n.op_type for n in load(model).nodes] == ["Add"]
    assert_matches_onnxruntime(model)


def test_constant_subgraph_that_cannot_run_is_named(capsys, tmp_path):
    nodes = [helper.make_node("Reshape", ["c", "bad_shape"], ["r"], name="broken_reshape"),
             helper.make_node("Add", ["x", "r"], ["y"])]
    inits = [const("c", np.ones(6), np.float32), const("bad_shape", [4], np.int64)]
    model = make_model(nodes, [fvalue("x", [4])], [fvalue("y", [4])], inits)
    code, _, err = run_cli(["simulate", save(model, tmp_path)], capsys)
    assert_one_line_error(code, err, "broken_reshape")


def test_mask_idioms_are_simplified():
    """Gather with identity indices, And with all-true, Expand before Where: as BERT exports emit."""
    S = 8
    nodes = [
        helper.make_node("Cast", ["mask"], ["mb"], name="to_bool", to=TensorProto.BOOL),
        helper.make_node("Flatten", ["mb"], ["flat"], name="flatten", axis=2),
        helper.make_node("Gather", ["flat", "positions"], ["picked"], name="pick", axis=0),
        helper.make_node("Reshape", ["picked", "row_shape"], ["row"], name="row"),
        helper.make_node("And", ["all_true", "row"], ["both"], name="and"),
        helper.make_node("Expand", ["both", "score_shape"], ["wide"], name="expand"),
        helper.make_node("Where", ["wide", "zero", "neg_inf"], ["additive"], name="where"),
        helper.make_node("Add", ["scores", "additive"], ["masked"], name="add"),
        helper.make_node("Softmax", ["masked"], ["y"], name="softmax", axis=-1),
    ]
    inits = [const("positions", np.arange(S).reshape(1, 1, 1, S), np.int64),
             const("row_shape", [1, 1, 1, S], np.int64),
             const("all_true", np.ones((1, 1, S, 1), dtype=bool)),
             const("score_shape", [1, 1, S, S], np.int64),
             const("zero", [0.0], np.float32), const("neg_inf", [-np.inf], np.float32)]
    inputs = [helper.make_tensor_value_info("mask", TensorProto.INT64, [1, S]),
              fvalue("scores", [1, 2, S, S])]
    model = make_model(nodes, inputs, [fvalue("y", [1, 2, S, S])], inits)
    graph = load(model)
    ops = [node.op_type for node in graph.nodes]
    assert not {"Gather", "And", "Expand", "Flatten"} & set(ops), ops
    where = next(n for n in graph.nodes if n.op_type == "Where")
    assert graph.tensors[where.outputs[0]].shape == (1, 1, 1, S)
    mask = np.ones((1, S), dtype=np.int64)
    mask[0, 5:] = 0
    scores = np.random.default_rng(1).standard_normal((1, 2, S, S)).astype(np.float32)
    assert_matches_onnxruntime(model, inputs={"mask": mask, "scores": scores}, tol=1e-6)


def test_dead_nodes_are_dropped():
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Sigmoid", ["x"], ["unused"])]
    model = make_model(nodes, [fvalue("x", [1, 4])], [fvalue("y", [1, 4])])
    assert [n.op_type for n in load(model).nodes] == ["Relu"]


# ----- binding dims ---------------------------------------------------------------------------
def relu_model(shape, name="x"):
    return make_model([helper.make_node("Relu", [name], ["y"], name="relu")],
                      [fvalue(name, shape)], [fvalue("y", shape)])


def test_dynamic_leading_dim_is_bound_to_one(tmp_path, capsys):
    graph = load(relu_model(["N", 4]))
    assert graph.tensors["x"].shape == (1, 4) and graph.tensors["y"].shape == (1, 4)
    assert any("'x'" in note and "bound to 1" in note for note in graph.notes), graph.notes
    code, out, _ = run_cli(["simulate", save(relu_model(["N", 4]), tmp_path), "--json"], capsys)
    assert code == 0
    assert any("bound to 1" in note for note in json.loads(out)["notes"])


def test_dynamic_inner_dim_needs_input_shape(tmp_path, capsys):
    model = relu_model([1, "seq"], name="tokens")
    with pytest.raises(UserError) as info:
        load(model)
    assert "tokens" in str(info.value) and "--input-shape" in str(info.value)
    path = save(model, tmp_path)
    code, _, err = run_cli(["simulate", path], capsys)
    assert_one_line_error(code, err, "tokens", "--input-shape")
    code, out, _ = run_cli(["simulate", path, "--input-shape", "tokens=1,7", "--json"], capsys)
    assert code == 0 and json.loads(out)["inputs"] == {"tokens": [1, 7]}


def two_input_model():
    inputs = [helper.make_tensor_value_info("ids", TensorProto.FLOAT, ["batch", "seq"]),
              helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "seq"])]
    return make_model([helper.make_node("Add", ["ids", "mask"], ["y"])], inputs,
                      [fvalue("y", ["batch", "seq"])])


def test_shared_dim_names_bind_together(tmp_path, capsys):
    """Both inputs are dynamic: one error names both; giving one binds the other by dim name."""
    path = save(two_input_model(), tmp_path)
    code, _, err = run_cli(["simulate", path], capsys)
    assert_one_line_error(code, err, "'ids' dim 1 (seq)", "'mask' dim 1 (seq)", "--input-shape ids=1,<seq>")
    graph = load(two_input_model(), {"ids": [2, 5]})
    assert graph.tensors["mask"].shape == (2, 5) and graph.tensors["y"].shape == (2, 5)
    assert any("'mask'" in note and "as in 'ids'" in note for note in graph.notes)


@pytest.mark.parametrize("spec, fragment", [
    ("nosuch=1,4", "nosuch"),          # not an input
    ("x=1,4,4", "rank"),               # wrong rank
    ("x=1,5", "fixed"),                # conflicts with a fixed dim
    ("x=0,4", "positive"),             # not positive
    ("x", "NAME="),                    # malformed
    ("x=1,a", "integers"),             # not numbers
])
def test_input_shape_mismatch(spec, fragment, tmp_path, capsys):
    path = save(relu_model(["N", 4]), tmp_path)
    code, _, err = run_cli(["simulate", path, "--input-shape", spec], capsys)
    assert_one_line_error(code, err, fragment)


def test_input_shape_that_breaks_shape_inference(tmp_path, capsys):
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")]
    model = make_model(nodes, [fvalue("x", [1, "L"])], [fvalue("y", [2, 4])],
                       [const("shape", [2, 4], np.int64)])
    code, _, err = run_cli(["simulate", save(model, tmp_path), "--input-shape", "x=1,7"], capsys)
    assert_one_line_error(code, err)


# ----- no-ops ---------------------------------------------------------------------------------
def test_identity_and_dropout_are_removed():
    nodes = [helper.make_node("Identity", ["x"], ["a"], name="id_in"),
             helper.make_node("Relu", ["a"], ["b"], name="relu"),
             helper.make_node("Dropout", ["b"], ["c"], name="dropout"),
             helper.make_node("Dropout", ["c", "ratio"], ["d", "mask"], name="dropout_mask_unused"),
             helper.make_node("Identity", ["d"], ["y"], name="id_out")]
    model = make_model(nodes, [fvalue("x", [1, 4])], [fvalue("y", [1, 4])],
                       [const("ratio", 0.3, np.float32)])
    graph = load(model)
    assert [(n.op_type, n.inputs, n.outputs) for n in graph.nodes] == [("Relu", ["x"], ["y"])]
    assert graph.outputs == ["y"]
    assert_matches_onnxruntime(model)


def test_identity_feeding_two_outputs_and_pass_through():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Identity", ["r"], ["y1"], name="id1"),
             helper.make_node("Identity", ["r"], ["y2"], name="id2"),
             helper.make_node("Identity", ["x"], ["y3"], name="id3")]
    outputs = [fvalue(n, [1, 4]) for n in ("y1", "y2", "y3")]
    model = make_model(nodes, [fvalue("x", [1, 4])], outputs)
    graph = load(model)
    assert graph.outputs == ["y1", "y2", "y3"]
    assert [n.op_type for n in graph.nodes].count("Relu") == 1
    assert_matches_onnxruntime(model)


# ----- unsupported ops and old opsets -----------------------------------------------------------
def test_unsupported_ops_are_listed_at_once(tmp_path, capsys):
    nodes = [helper.make_node("Foo", ["x"], ["a"], name="foo_1", domain="com.acme"),
             helper.make_node("Relu", ["a"], ["b"], name="relu"),
             helper.make_node("Foo", ["b"], ["c"], name="foo_2", domain="com.acme"),
             helper.make_node("Bar", ["c"], ["y"], name="bar_1", domain="com.acme")]
    graph = helper.make_graph(nodes, "g", [fvalue("x", [1, 4])], [fvalue("y", [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.acme", 1)])
    path = save(model, tmp_path)
    code, _, err = run_cli(["simulate", path], capsys)
    assert_one_line_error(code, err, "foo_1", "foo_2", "bar_1", "com.acme.Foo", "com.acme.Bar")
    # inspect still shows the graph and flags them
    code, out, _ = run_cli(["inspect", path, "--json"], capsys)
    assert code == 0
    flagged = {entry["node"] for entry in json.loads(out)["unsupported"]}
    assert flagged == {"foo_1", "foo_2", "bar_1"}


def test_shape_rule_of_our_own_op_fills_what_onnx_inference_cannot(monkeypatch):
    """An op whose shape ONNX cannot infer (here: of a private domain) gives OpDef.infer;
    ONNX inference then goes on downstream from it."""
    from onnx2mcu.ir import DType
    from onnx2mcu.ops import registry

    def twice(node, inputs):
        return [np.concatenate([inputs[0], inputs[0]], axis=-1)]

    def infer(node, tensors):
        x = tensors[0]
        return [(x.shape[:-1] + (2 * x.shape[-1],), DType.FLOAT32)]

    op = registry.OpDef("Twice", twice, domain="test.onnx2mcu", infer=infer)
    monkeypatch.setitem(registry._REGISTRY, ("test.onnx2mcu", "Twice"), op)
    nodes = [helper.make_node("Twice", ["x"], ["t"], name="twice", domain="test.onnx2mcu"),
             helper.make_node("Relu", ["t"], ["r"], name="relu"),
             helper.make_node("Twice", ["r"], ["y"], name="twice_again", domain="test.onnx2mcu")]
    graph = helper.make_graph(nodes, "g", [fvalue("x", ["N", 3])], [fvalue("y", ["N", 12])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("test.onnx2mcu", 1)])
    ir = load(model)
    assert [ir.tensors[n.outputs[0]].shape for n in ir.nodes] == [(1, 6), (1, 6), (1, 12)]
    report = onnx2mcu.simulate(model, check_onnxruntime=False)
    x = report.inputs["x"]
    expected = np.tile(np.maximum(np.tile(x, 2), 0), 2)
    np.testing.assert_array_equal(report.result.outputs["y"], expected)


def old_opset_model(opset: int) -> onnx.ModelProto:
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], name="unsqueeze", axes=[0]),
             helper.make_node("Squeeze", ["u"], ["s"], name="squeeze", axes=[0]),
             helper.make_node("BatchNormalization", ["s", "g", "b", "m", "v"], ["bn"], name="bn"),
             helper.make_node("ReduceMean", ["bn"], ["rm"], name="mean", axes=[2, 3], keepdims=1),
             helper.make_node("Add", ["bn", "rm"], ["a"], name="add"),
             helper.make_node("Softmax", ["a"], ["y"], name="softmax", axis=1)]
    if opset >= 11:
        nodes.insert(5, helper.make_node("Clip", ["a", "lo", "hi"], ["c"], name="clip"))
    else:
        nodes.insert(5, helper.make_node("Clip", ["a"], ["c"], name="clip", min=-1.0, max=1.0))
    nodes[-1].input[0] = "c"
    inits = [const("g", rng.uniform(0.5, 1.5, 3), np.float32), const("b", rng.normal(size=3), np.float32),
             const("m", rng.normal(size=3), np.float32), const("v", rng.uniform(0.5, 1.5, 3), np.float32)]
    if opset >= 11:
        inits += [const("lo", -1.0, np.float32), const("hi", 1.0, np.float32)]
    return make_model(nodes, [fvalue("x", [1, 3, 4, 4])], [fvalue("y", [1, 3, 4, 4])], inits, opset=opset)


@pytest.mark.parametrize("opset", [9, 11])
def test_old_opset_is_converted(opset):
    model = old_opset_model(opset)
    graph = load(model)
    assert {"BatchNormalization", "ReduceMean", "Softmax"} <= {n.op_type for n in graph.nodes}
    assert_matches_onnxruntime(model)


# ----- files that are not models ------------------------------------------------------------------
def test_bad_files_give_one_line(tmp_path, capsys):
    data = build_example("cnn").SerializeToString()
    cases = {
        "missing": (tmp_path / "missing.onnx", None),
        "empty": (tmp_path / "empty.onnx", b""),
        "text": (tmp_path / "notes.onnx", b"this is not a model, just some text\n"),
        "png": (tmp_path / "picture.onnx", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
        "folder": (tmp_path / "folder.onnx", "dir"),
    }
    for fraction in (0.1, 0.5, 0.9, 0.999):
        cases[f"truncated {fraction}"] = (tmp_path / f"cut_{fraction}.onnx", data[:int(len(data) * fraction)])
    for label, (path, content) in cases.items():
        if content == "dir":
            path.mkdir()
        elif content is not None:
            path.write_bytes(content)
        for command in ("simulate", "inspect"):
            code, out, err = run_cli([command, str(path)], capsys)
            assert code == 2, (label, command, err)
            assert_one_line_error(code, err, str(path))
            assert out == ""


# ----- --inputs, --plot, --json ------------------------------------------------------------------
@pytest.fixture()
def relu_path(tmp_path):
    return save(relu_model(["N", 4]), tmp_path)


@pytest.mark.parametrize("arrays, fragment", [
    ({"z": np.zeros((1, 4), np.float32)}, "z"),                     # wrong name
    ({"x": np.zeros((1, 5), np.float32)}, "shape"),                 # wrong shape
    ({"x": np.zeros((1, 4), np.float32), "extra": np.zeros(1)}, "extra"),
    ({"x": np.zeros((1, 4), dtype=bool)}, None),                    # wrong kind of dtype is fine if castable
])
def test_bad_npz(arrays, fragment, relu_path, tmp_path, capsys):
    npz = tmp_path / "inputs.npz"
    np.savez(npz, **arrays)
    plot = tmp_path / "out.png"
    code, _, err = run_cli(["simulate", relu_path, "--inputs", str(npz), "--plot", str(plot)], capsys)
    if fragment is None:
        assert code in (0, 2)
        if code == 2:
            assert_one_line_error(code, err)
        return
    assert_one_line_error(code, err, fragment)
    assert not plot.exists()


def test_unreadable_npz(relu_path, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    for path in (bad, tmp_path / "missing.npz"):
        code, _, err = run_cli(["simulate", relu_path, "--inputs", str(path)], capsys)
        assert_one_line_error(code, err, str(path))


def test_plot_and_json(relu_path, tmp_path, capsys):
    plot = tmp_path / "plots" / "memory.png"
    code, out, _ = run_cli(["simulate", "--example", "cnn", "--plot", str(plot), "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["peak_bytes"] > 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in plot.parent.iterdir()] == ["memory.png"]  # no temporary left over


def test_failing_run_writes_no_plot(tmp_path, capsys):
    plot = tmp_path / "out.png"
    code, _, err = run_cli(["simulate", str(tmp_path / "missing.onnx"), "--plot", str(plot)], capsys)
    assert_one_line_error(code, err)
    assert not plot.exists() and list(tmp_path.iterdir()) == []


def test_plot_interrupted_while_writing_leaves_nothing(relu_path, tmp_path, capsys, monkeypatch):
    plot = tmp_path / "out.png"

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    assert main(["simulate", relu_path, "--plot", str(plot)]) == 2  # one line, no traceback
    assert "disk full" in capsys.readouterr().err
    assert not plot.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_inspect_json_parses(capsys):
    code, out, _ = run_cli(["inspect", "--example", "cnn", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["ops"] == len(data["nodes"]) and not data["unsupported"]
