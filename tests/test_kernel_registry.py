"""The kernel registry (codegen/kernels.py): lookup, selection by a board's preference,
fallback to portable kernels, scratch recorded before scheduling and checked by codegen,
and the list of ops only the Python reference runs."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from onnx2mcu.codegen import kernels
from onnx2mcu.codegen.context import CONV, ELEMENTWISE
from onnx2mcu.codegen.generate import render_model
from onnx2mcu.codegen.kernels import (Kernel, KernelSelectionMismatch, Selection, c_support,
                                      kernel_for, register_kernel, select_kernel, select_kernels)
from onnx2mcu.frontend import load
from onnx2mcu.ir import DType
from onnx2mcu.ops import all_ops
from onnx2mcu.scheduler import schedule
from onnx2mcu.targets import get_board

pytestmark = pytest.mark.unit


def _conv_model() -> onnx.ModelProto:
    w = nh.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c"], ["y"], name="relu")]
    graph = h.make_graph(nodes, "conv_relu", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 8, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 4, 8, 8])], [w])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _mixed_model() -> onnx.ModelProto:
    """int64 Abs (has a C kernel) -> Sign and ArgMax (int64: only the Python reference)."""
    nodes = [h.make_node("Abs", ["x"], ["r"], name="abs"),
             h.make_node("Sign", ["r"], ["s"], name="sign"),
             h.make_node("ArgMax", ["s"], ["y"], name="argmax", axis=1)]
    graph = h.make_graph(nodes, "mixed", [h.make_tensor_value_info("x", T.INT64, [2, 3])],
                         [h.make_tensor_value_info("y", T.INT64, [2, 1])])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _fake_dsp(monkeypatch, op_type: str, dtype: DType = DType.FLOAT32, applies=None,
              scratch_bytes=None) -> Kernel:
    """An "arm-dsp" variant of the portable kernel, put into the registry for one test."""
    portable = kernel_for(op_type, dtype)
    entry = Kernel("", op_type, dtype, "arm-dsp", portable.emit, portable.sources, applies,
                   scratch_bytes)
    monkeypatch.setitem(kernels._KERNELS, ("", op_type, dtype, "arm-dsp"), entry)
    return entry


def test_lookup_by_op_dtype_and_backend():
    conv = kernel_for("Conv", DType.FLOAT32)
    assert conv is not None and conv.backend == "portable" and conv.sources == (CONV,)
    assert conv.name == "Conv/float32/portable"
    assert kernel_for("Conv", DType.INT8).sources == ("o2m_s8_conv.c",)  # codegen/emit/int8.py
    fast = kernel_for("Conv", DType.FLOAT32, "arm-dsp")  # the register-tiled conv (codegen/emit/conv.py)
    assert fast.name == "Conv/float32/arm-dsp" and fast.sources == (CONV,)
    assert kernel_for("Relu", DType.FLOAT32, "arm-dsp") is None
    # integer Add has its own entry (o2m_add_<T>), bool And too; int64 Sign has none
    assert kernel_for("Add", DType.INT64).sources == (ELEMENTWISE,)
    assert kernel_for("And", DType.BOOL) is not None
    assert kernel_for("Sign", DType.INT64) is None
    assert kernel_for("TiledAttention", DType.FLOAT32, domain="onnx2mcu") is not None


def test_register_kernel_refuses_duplicates_and_unknown_backends():
    with pytest.raises(ValueError, match="registered twice"):
        register_kernel("Conv", kernel_for("Conv", DType.FLOAT32).emit, dtypes=(DType.FLOAT32,))
    with pytest.raises(ValueError, match="unknown kernel backend"):
        register_kernel("Conv", kernel_for("Conv", DType.FLOAT32).emit, backend="gpu")


def test_boards_name_their_preference():
    assert get_board("mps2-an386").kernels == ("arm-dsp", "portable")  # Cortex-M4
    assert get_board("nucleo-f746zg").kernels == ("arm-dsp", "portable")  # Cortex-M7
    assert get_board("rp2040").kernels == ("portable",)  # Cortex-M0+
    assert get_board("host").kernels == ("portable",)


def test_dsp_board_falls_back_to_portable():
    graph = load(_conv_model())
    chosen = select_kernels(graph, get_board("mps2-an386"))
    assert {name: s.kernel.backend for name, s in chosen.items()} == {"conv": "arm-dsp",
                                                                       "relu": "portable"}
    chosen = select_kernels(graph, get_board("rp2040"))
    assert {s.kernel.backend for s in chosen.values()} == {"portable"}


def test_selection_takes_the_first_applicable_backend(monkeypatch):
    graph = load(_conv_model())
    conv = graph.node("conv")
    _fake_dsp(monkeypatch, "Conv")
    assert select_kernel(conv, graph, ("arm-dsp", "portable")).kernel.backend == "arm-dsp"
    assert select_kernel(conv, graph, ("portable",)).kernel.backend == "portable"
    assert select_kernel(conv, graph, get_board("rp2040").kernels).kernel.backend == "portable"
    # a variant that does not apply to this node leaves it to the next backend
    _fake_dsp(monkeypatch, "Conv", applies=lambda node, g: "needs channels % 4 == 0")
    assert select_kernel(conv, graph, ("arm-dsp", "portable")).kernel.backend == "portable"
    assert select_kernel(conv, graph, ("arm-dsp",)) == "arm-dsp: needs channels % 4 == 0"


def test_selected_scratch_reaches_the_plan_and_is_checked(monkeypatch):
    graph = load(_conv_model())
    _fake_dsp(monkeypatch, "Conv", scratch_bytes=lambda node, g: 96)
    chosen = select_kernels(graph, ("arm-dsp", "portable"))
    assert chosen["conv"].scratch == 96 and graph.scratch == {"conv": 96, "relu": 0}
    sched = schedule(graph, "file-order")
    reserved = {b.scratch_of: b.nbytes for b in sched.profile.buffers if b.scratch_of}
    assert reserved == {"conv": 96}
    render_model(graph, sched, board=("arm-dsp", "portable"))  # agrees: renders
    with pytest.raises(KernelSelectionMismatch, match="reserved 96 B of scratch"):
        render_model(graph, sched, board=("portable",))  # the portable Conv needs none


def test_adder_conv_scratch_is_the_op_formula():
    """The kernel entry points at the core's formula (one source for scheduler and codegen)."""
    from onnx2mcu.ir import Graph, Node, Tensor
    from onnx2mcu.ops import lookup

    tensors = {"x": Tensor("x", (1, 3, 6, 6)), "w": Tensor("w", (4, 3, 3, 3), data=np.ones((4, 3, 3, 3), np.float32)),
               "y": Tensor("y", (1, 4, 4, 4))}
    node = Node("adder", "AdderConv", ["x", "w"], ["y"], {"kernel_shape": [3, 3]}, domain="onnx2mcu")
    graph = Graph("g", [node], tensors, ["x"], ["y"])
    found = select_kernel(node, graph, ("portable",))
    assert isinstance(found, Selection)
    assert found.kernel.scratch_bytes is None
    assert found.scratch == lookup("AdderConv", "onnx2mcu").scratch_bytes(node, graph) == 2 * 27 * 4


def test_c_support_names_kernels_and_python_only_nodes():
    graph = load(_mixed_model())
    support = c_support(graph)
    assert isinstance(support["abs"], Selection)
    why = "no C kernel for dtype int64"
    assert support["sign"] == why and support["argmax"] == why
    assert kernels.python_only(graph) == {"sign": why, "argmax": why}


def test_every_op_with_a_reference_has_a_float_c_kernel():
    """compile refuses no float32 node type that simulate runs (issue 12, item 3)."""
    ops = [op for op in all_ops() if DType.FLOAT32 in op.dtypes[0]]
    assert len(ops) > 100  # the registry is really walked
    missing = [(f"{op.domain}." if op.domain else "") + op.op_type for op in ops
               if kernel_for(op.op_type, DType.FLOAT32, "portable", op.domain) is None]
    assert missing == []


def test_every_kernel_is_for_a_registered_op_and_dtype():
    from onnx2mcu.ops import lookup

    for entry in kernels.all_kernels():
        op = lookup(entry.op_type, entry.domain)
        assert op is not None, entry.name
        assert op.accepts(0, entry.dtype), f"{entry.name}: the op does not accept that dtype"


def test_core_and_scheduler_import_no_codegen():
    code = ("import sys; from onnx2mcu.ops import all_ops; import onnx2mcu.scheduler; all_ops(); "
            "print([m for m in sys.modules if m.startswith('onnx2mcu.codegen')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_inspect_and_simulate_mark_python_only_nodes(tmp_path, capsys):
    from onnx2mcu.cli import main

    path = tmp_path / "mixed.onnx"
    onnx.save(_mixed_model(), path)
    assert main(["inspect", str(path), "--json"]) == 0
    rows = {r["node"]: r for r in json.loads(capsys.readouterr().out)["nodes"]}
    assert rows["abs"]["c_kernel"] == "Abs/int64/portable" and rows["abs"]["python_only"] is None
    assert rows["sign"]["c_kernel"] is None and rows["sign"]["python_only"] == "no C kernel for dtype int64"
    assert main(["inspect", str(path)]) == 0
    assert "python only: no C kernel for dtype int64" in capsys.readouterr().out
    assert main(["simulate", str(path), "--json", "--scheduler", "file-order"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["node"] for e in data["python_only"]] == ["sign", "argmax"]
    assert main(["simulate", str(path), "--scheduler", "file-order"]) == 0
    assert "python-only nodes: sign (Sign), argmax (ArgMax)" in capsys.readouterr().out
