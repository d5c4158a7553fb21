"""`onnx2mcu flash` (onnx2mcu/flash.py) and the RTT harness (codegen/board/o2m_rtt.c): the GDB
route end to end against QEMU's gdbstub (load, run to the end marker, read the RTT buffer,
compare with the simulator); the pyOCD / OpenOCD routes' exact calls with --dry-run; what
is said when a tool is missing."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from onnx2mcu import flash as flash_mod
from onnx2mcu.build import compile_model
from onnx2mcu.cli import main
from onnx2mcu.examples import build_example

HAVE_ARM = shutil.which("arm-none-eabi-gcc") is not None
HAVE_QEMU_GDB = HAVE_ARM and all(shutil.which(t) for t in ("qemu-system-arm", "gdb-multiarch"))
pytestmark = [pytest.mark.c]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture
def gdbstub():
    """qemu-system-arm -M mps2-an386 halted behind its gdbstub, with nothing loaded."""
    port = _free_port()
    proc = subprocess.Popen(["qemu-system-arm", "-M", "mps2-an386", "-S", "-gdb", f"tcp:localhost:{port}",
                             "-nographic", "-monitor", "none", "-serial", "none"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            socket.create_connection(("localhost", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"localhost:{port}"
    proc.kill()
    proc.wait(timeout=10)


@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_QEMU_GDB, reason="qemu-system-arm / gdb-multiarch / arm-none-eabi-gcc missing")
def test_gdb_route_programs_runs_and_reads_back_the_simulators_outputs(tmp_path, gdbstub, capsys):
    out = tmp_path / "dscnn"
    compile_model(build_example("dscnn"), out, board="mps2-an386", io="rtt")
    assert main(["flash", str(out), "--probe", "gdb", gdbstub, "--read-results", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["agree"] and data["reference"] == "simulator"
    expected = flash_mod.expected_from_simulator(out, json.loads((out / "report.json").read_text()))
    for name, values in expected.items():
        np.testing.assert_allclose(np.asarray(data["outputs"][name], np.float32), values, rtol=1e-4, atol=1e-6)
    assert (out / "app.hex").read_text().startswith(":") and (out / "app.bin").stat().st_size > 1000


@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_QEMU_GDB, reason="qemu-system-arm / gdb-multiarch / arm-none-eabi-gcc missing")
def test_rtt_buffer_holds_the_protocol_and_a_wrong_result_is_caught(tmp_path, gdbstub, capsys):
    """Corrupt the compiled-in test inputs: the board computes on other inputs, so the
    comparison with the simulator must say DIFFER and exit 1."""
    out = tmp_path / "cnn"
    compile_model(build_example("cnn"), out, board="mps2-an386", io="rtt")
    main_c = (out / "main.c").read_text()
    first = main_c.index("= {") + 3
    end = main_c.index("}", first)
    (out / "main.c").write_text(main_c[:first] + main_c[first:end].replace("f,", "f * 0.5f,", 40) + main_c[end:])
    assert main(["flash", str(out), "--probe", "gdb", gdbstub, "--read-results"]) == 1
    assert "DIFFER" in capsys.readouterr().out


@pytest.fixture(scope="module")
def nucleo(tmp_path_factory):
    out = tmp_path_factory.mktemp("flash") / "nucleo"
    compile_model(build_example("cnn"), out, board="nucleo-f746zg", io="rtt")
    return out


def test_pyocd_dry_run_prints_the_api_calls(nucleo, capsys):
    assert main(["flash", str(nucleo), "--probe", "pyocd", "--read-results", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert f"make -C {nucleo} app.elf app.hex app.bin" in text
    assert "ConnectHelper.session_with_chosen_probe(target_override='stm32f746zgtx')" in text
    assert f"FileProgrammer(session).program('{nucleo / 'app.hex'}')" in text
    assert "read_memory_block8(buf, n)" in text
    assert not (nucleo / "app.elf").exists(), "a dry run builds nothing"


def test_openocd_dry_run_prints_the_command(nucleo, capsys):
    assert main(["flash", str(nucleo), "--probe", "openocd", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert f"openocd -f board/st_nucleo_f7.cfg -c 'program {nucleo / 'app.elf'} verify reset exit'" in text
    assert main(["flash", str(nucleo), "--probe", "openocd", "--target", "board/my.cfg", "--read-results",
                 "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "-f board/my.cfg" in text and "'rtt setup 0x20000000 0x50000 \"SEGGER RTT\"'" in text
    assert "'rtt server start 19021 0'" in text


def test_gdb_dry_run_prints_the_script(nucleo, capsys):
    assert main(["flash", str(nucleo), "--probe", "gdb", "localhost:3333", "--read-results", "--dry-run"]) == 0
    text = capsys.readouterr().out
    for line in ("target remote localhost:3333", "load", "set $pc = *(unsigned int *)0x8000004",
                 "break o2m_rtt_finished", "dump binary memory rtt.bin $o2m_buf $o2m_buf + $o2m_len"):
        assert line in text


@pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc missing")
def test_missing_tools_name_their_package(nucleo, monkeypatch, capsys):
    real_which = shutil.which
    monkeypatch.setattr(flash_mod.shutil, "which",
                        lambda name: None if name in ("openocd", "gdb-multiarch") else real_which(name))
    assert main(["flash", str(nucleo), "--probe", "openocd"]) == 2
    assert "apt-get install openocd" in capsys.readouterr().err
    assert main(["flash", str(nucleo), "--probe", "gdb", "localhost:1"]) == 2
    assert "apt-get install gdb-multiarch" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "pyocd", None)
    monkeypatch.setitem(sys.modules, "pyocd.core.helpers", None)
    assert main(["flash", str(nucleo), "--probe", "pyocd"]) == 2
    assert "pip install pyocd" in capsys.readouterr().err


def test_read_results_needs_rtt_and_bad_probe_is_one_line(tmp_path, capsys):
    out = tmp_path / "semi"
    compile_model(build_example("cnn"), out, board="mps2-an386")
    assert main(["flash", str(out), "--probe", "gdb", "localhost:1", "--read-results"]) == 2
    assert "--io rtt" in capsys.readouterr().err
    assert main(["flash", str(out), "--probe", "jlink"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("onnx2mcu: error: --probe jlink")
    assert main(["compile", "--example", "cnn", "--io", "rtt", "-o", str(tmp_path / "h")]) == 2
    assert "needs an MCU board" in capsys.readouterr().err
