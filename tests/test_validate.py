"""The front door (frontend/validate.py): each way a file can be bad is one line
`onnx2mcu: error: ...` and exit 2, found before anything large is allocated; library
exceptions name the file and node; internal errors ask for a bug report."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from onnx2mcu import cli


def _conv_model(group=1, strides=(1, 1), channels=4, opset=13) -> onnx.ModelProto:
    w = np.ones((channels, channels // max(group, 1) if group > 0 and channels % group == 0 else channels,
                 3, 3), np.float32)
    node = h.make_node("Conv", ["x", "w"], ["y"], name="conv0", group=group, strides=list(strides),
                       kernel_shape=[3, 3])
    graph = h.make_graph([node], "g", [h.make_tensor_value_info("x", T.FLOAT, [1, channels, 8, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, None)], [nh.from_array(w, "w")])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


def _relu_model(**changes) -> onnx.ModelProto:
    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"], name="relu0")], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [1, 4])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 4])])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])


def _save(model: onnx.ModelProto, path: Path) -> str:
    path.write_bytes(model.SerializeToString())  # no checker: the file is meant to be bad
    return str(path)


def _one_line(capsys, *words: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("onnx2mcu: error: "), err
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in err
    return lines[0]


def _refused(argv, capsys, *words):
    assert cli.main(argv) == 2
    return _one_line(capsys, *words)


@pytest.mark.parametrize("command", ["inspect", "simulate", "compile"])
def test_unknown_dtype_code(tmp_path, capsys, command):
    model = _relu_model()
    model.graph.input[0].type.tensor_type.elem_type = 999
    argv = [command, _save(model, tmp_path / "m.onnx")] + (["-o", str(tmp_path / "o")] if command == "compile" else [])
    _refused(argv, capsys, "unknown dtype code 999", "m.onnx")


def test_zero_and_huge_dims(tmp_path, capsys):
    model = _relu_model()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 0
    _refused(["simulate", _save(model, tmp_path / "z.onnx")], capsys, "dim 1 is 0")
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 2 ** 31
    _refused(["simulate", _save(model, tmp_path / "h.onnx")], capsys, "--max-tensor-bytes")
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1000
    _refused(["simulate", _save(model, tmp_path / "s.onnx"), "--max-tensor-bytes", "1000"], capsys, "limit of 1000")


def test_huge_declared_weights_are_refused_before_reading(tmp_path, capsys):
    model = _conv_model()
    del model.graph.initializer[0].dims[:]
    model.graph.initializer[0].dims.extend([2 ** 20, 2 ** 20])
    _refused(["inspect", _save(model, tmp_path / "w.onnx")], capsys, "initializer 'w'", "bytes")
    model = _conv_model()
    model.graph.initializer[0].dims[0] = 5  # data no longer matches the dims
    _refused(["inspect", _save(model, tmp_path / "d.onnx")], capsys, "damaged")


def test_missing_external_data(tmp_path, capsys):
    model = _conv_model()
    t = model.graph.initializer[0]
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = T.EXTERNAL
    entry = t.external_data.add()
    entry.key, entry.value = "location", "weights.bin"
    _refused(["simulate", _save(model, tmp_path / "e.onnx")], capsys, "weights.bin", "missing")


@pytest.mark.parametrize("opset", [0, 99])
def test_opsets_outside_support(tmp_path, capsys, opset):
    _refused(["simulate", _save(_conv_model(opset=opset), tmp_path / "o.onnx")], capsys, f"opset {opset}")


def test_empty_graph_and_no_outputs(tmp_path, capsys):
    model = _relu_model()
    del model.graph.node[:]
    _refused(["inspect", _save(model, tmp_path / "e.onnx")], capsys, "no graph inside")
    model = _relu_model()
    del model.graph.output[:]
    _refused(["compile", _save(model, tmp_path / "n.onnx"), "-o", str(tmp_path / "out")], capsys, "no outputs")
    assert not (tmp_path / "out").exists()


def test_duplicated_outputs_and_output_that_is_an_input(tmp_path, capsys):
    model = _relu_model()
    model.graph.output.append(model.graph.output[0])
    _refused(["compile", _save(model, tmp_path / "d.onnx"), "-o", str(tmp_path / "out")], capsys,
             "more than once")
    model = _relu_model()
    model.graph.output.append(model.graph.input[0])
    _refused(["simulate", _save(model, tmp_path / "i.onnx")], capsys, "'x' is a graph input")


def test_dangling_name_and_cycle(tmp_path, capsys):
    model = _relu_model()
    model.graph.node[0].input[0] = "nowhere"
    _refused(["simulate", _save(model, tmp_path / "d.onnx")], capsys, "relu0", "'nowhere'", "never defined")
    model = _relu_model()
    model.graph.node.append(h.make_node("Neg", ["z"], ["w"], name="neg0"))
    model.graph.node[0].input[0] = "w"
    _refused(["simulate", _save(model, tmp_path / "c.onnx")], capsys, "relu0", "cycle")


@pytest.mark.parametrize("kwargs, words", [
    ({"strides": (0, 1)}, ("conv0", "strides=[0, 1]")),
    ({"group": 0}, ("conv0", "group=[0]")),
    ({"group": 3}, ("conv0", "group=3", "does not divide")),
])
def test_conv_attributes(tmp_path, capsys, kwargs, words):
    path = _save(_conv_model(**kwargs), tmp_path / "c.onnx")
    _refused(["compile", path, "-o", str(tmp_path / "out")], capsys, *words)
    assert not (tmp_path / "out").exists()


def test_axis_out_of_range(tmp_path, capsys):
    graph = h.make_graph([h.make_node("Softmax", ["x"], ["y"], name="sm", axis=5)], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [1, 4])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 4])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    _refused(["simulate", _save(model, tmp_path / "a.onnx")], capsys, "axis")


def test_input_shape_too_big(tmp_path, capsys):
    model = _relu_model()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "n"
    _refused(["simulate", _save(model, tmp_path / "m.onnx"), "--input-shape", "x=1,4000000000"], capsys,
             "--max-tensor-bytes")


def test_npz_with_a_huge_declared_array(tmp_path, capsys):
    path = tmp_path / "huge.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (2 ** 20, 2 ** 20)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("input.npy", header.getvalue())
    _refused(["simulate", "--example", "cnn", "--inputs", str(path)], capsys, "huge.npz", "'input'")


def test_paths(tmp_path, capsys):
    bad = os.fsdecode(bytes(tmp_path) + b"/m\xff.onnx")
    _refused(["inspect", bad], capsys, "not valid UTF-8")
    _refused(["inspect", str(tmp_path / ("a" * 300))], capsys, "300 bytes")
    (tmp_path / "file").write_text("x")
    _refused(["compile", "--example", "cnn", "-o", str(tmp_path / "file" / "out")], capsys, "is a file")
    _refused(["compile", "--example", "cnn", "-o", str(tmp_path / ("b" * 300))], capsys, "300 bytes")


def test_library_exception_names_file_and_node(tmp_path, capsys, monkeypatch):
    import onnx2mcu.frontend.convert as convert

    def broken_node(*args, **kwargs):
        node = onnx.helper.make_node("Relu", ["x"], ["y"], name="relu0")  # noqa: F841 - read by the boundary
        np.zeros(3).reshape(7)  # numpy raises ValueError on this node

    monkeypatch.setattr(convert, "_drop_no_ops", broken_node)
    path = _save(_relu_model(), tmp_path / "m.onnx")
    _refused(["simulate", path], capsys, "m.onnx", "node 'relu0' (Relu)", "cannot read the model")


def test_internal_error_asks_for_a_bug_report(monkeypatch, capsys):
    from onnx2mcu import cli as cli_module

    def bug(args):
        raise KeyError("oops")

    monkeypatch.setattr(cli_module, "cmd_boards", bug)
    parser_func = cli_module.build_parser

    def parser():
        p = parser_func()
        p._subparsers._group_actions[0].choices["boards"].set_defaults(func=bug)
        return p

    monkeypatch.setattr(cli_module, "build_parser", parser)
    assert cli_module.main(["boards"]) == 70
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "bug" in err and "onnx2mcu boards" in err
    assert "Traceback" not in err
    with pytest.raises(KeyError):
        cli_module.main(["--debug", "boards"])
