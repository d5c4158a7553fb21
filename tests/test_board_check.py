"""`check` on boards QEMU does not emulate (onnx2mcu/board_check.py): the real board's build
gives flash/RAM, the emulated board of the same core runs it (labelled), exit 0 / 1 / 2."""
from __future__ import annotations

import shutil

import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from onnx2mcu.board_check import agrees, stand_in
from onnx2mcu.cli import main

HAVE_QEMU = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm", "gcc", "make"))
needs_qemu = pytest.mark.skipif(not HAVE_QEMU, reason="arm-none-eabi-gcc / qemu-system-arm / gcc missing")
pytestmark = [pytest.mark.c, pytest.mark.qemu]


@pytest.fixture
def relu_file(tmp_path):
    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"], name="n0")], "relu",
                         [h.make_tensor_value_info("x", T.FLOAT, [4, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, [4, 8])])
    path = tmp_path / "relu.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return path


@needs_qemu
def test_check_on_nucleo_runs_on_its_stand_in(relu_file, capsys):
    assert main(["check", str(relu_file), "--board", "nucleo-f746zg"]) == 0
    out = capsys.readouterr().out
    assert "| build nucleo-f746zg |" in out
    assert "| qemu mps2-an500 (stand-in for nucleo-f746zg, cortex-m7) | 0 |" in out


@needs_qemu
def test_check_exits_1_when_the_c_is_wrong(relu_file, capsys, monkeypatch):
    """A deliberately broken emitter (Relu emitted as Neg): host and QEMU outputs differ."""
    import dataclasses

    from onnx2mcu.codegen import kernel_registry
    from onnx2mcu.codegen.kernels import kernel_for
    from onnx2mcu.ir import DType

    kernel = kernel_for("Relu", DType.FLOAT32)
    original = kernel.emit

    def broken(node, ctx):
        code = original(node, ctx)
        return code.replace("o2m_relu_f32", "o2m_neg_f32") if isinstance(code, str) else \
            [line.replace("o2m_relu_f32", "o2m_neg_f32") for line in code]

    monkeypatch.setitem(kernel_registry._KERNELS, ("", "Relu", DType.FLOAT32, kernel.backend),
                        dataclasses.replace(kernel, emit=broken))
    assert main(["check", str(relu_file), "--board", "nucleo-f746zg"]) == 1
    assert "disagree" in capsys.readouterr().out


@needs_qemu
def test_check_on_cortex_m0plus_runs_on_the_m3_image(relu_file, capsys):
    assert main(["check", str(relu_file), "--board", "rp2040"]) == 0
    out = capsys.readouterr().out
    assert "| build rp2040 |" in out
    assert "| qemu mps2-an385 (stand-in for rp2040, cortex-m0plus) | 0 |" in out


@needs_qemu
@pytest.mark.parametrize("board", ["mps2-an385", "mps2-an505", "mps3-an547"])
def test_check_runs_on_the_new_qemu_boards(relu_file, capsys, board):
    assert main(["check", str(relu_file), "--board", board]) == 0
    assert f"| qemu {board} | 0 |" in capsys.readouterr().out


def test_check_bad_board_is_exit_2(relu_file, capsys):
    assert main(["check", str(relu_file), "--board", "nucleo-nope"]) == 2
    assert capsys.readouterr().err.startswith("onnx2mcu: error: unknown board")


def test_stand_ins_and_tolerances():
    assert stand_in("nucleo-f746zg").name == "mps2-an500"
    assert stand_in("nrf52840dk").name == "mps2-an386"
    assert stand_in("mps2-an386").name == "mps2-an386"
    assert stand_in("rp2040").name == "mps2-an385"  # Cortex-M0+ on the M3 image
    assert stand_in("mps2-an505").name == "mps2-an505"
    assert stand_in("mps3-an547").name == "mps3-an547"
    ints = {"y": {"dtype": "int8"}}
    floats = {"y": {"dtype": "float32"}}
    assert agrees({"max_abs_err": 0.0, "max_rel_err": 0.0}, ints, None, None)
    assert not agrees({"max_abs_err": 1.0, "max_rel_err": 0.01}, ints, None, None)
    assert agrees({"max_abs_err": 1.0, "max_rel_err": 0.01}, ints, 0.02, None)
    assert agrees({"max_abs_err": 1e-6, "max_rel_err": 1e-7}, floats, None, None)
    assert not agrees({"max_abs_err": 0.1, "max_rel_err": 0.05}, floats, None, None)


@needs_qemu
def test_run_exits_1_when_outputs_differ(relu_file, tmp_path, capsys):
    out = tmp_path / "proj"
    assert main(["compile", str(relu_file), "-o", str(out)]) == 0
    assert main(["run", str(out), "--host"]) == 0
    model_c = out / "model.c"
    model_c.write_text(model_c.read_text().replace("o2m_relu_f32", "o2m_neg_f32"))
    capsys.readouterr()
    assert main(["run", str(out), "--host"]) == 1
    assert "disagree" in capsys.readouterr().out
