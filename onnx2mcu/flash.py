"""`onnx2mcu flash DIR`: build app.elf/.hex/.bin, program a board, optionally read the results back.

Three routes (docs/ARCHITECTURE.md, "flashing"):
    gdb HOST:PORT  any GDB server (QEMU's -gdb, OpenOCD's, pyOCD's, J-Link's) through
                   gdb-multiarch: load, start at the reset vector, break at the end marker
                   o2m_rtt_finished and dump the RTT up-buffer
    pyocd          pyOCD's Python API (pip install pyocd): program the .hex, run, read RTT
    openocd        OpenOCD with the board's config: program, run, read RTT through `rtt server`
Results come back over RTT, so `--read-results` needs a project compiled with `--io rtt`;
they are compared with the simulator on the project's test inputs. `dry_run` returns the
exact commands / API calls without running anything.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from onnx2mcu.errors import UserError
from onnx2mcu.targets import Board, board_of_summary

PROBES = ("gdb", "pyocd", "openocd")
GDB = "gdb-multiarch"
OPENOCD = "openocd"
INSTALL = {
    "gdb": "apt-get install gdb-multiarch",
    "openocd": "apt-get install openocd",
    "pyocd": "pip install pyocd   (or: pip install 'onnx2mcu[flash]')",
}
# probe-side names of the registry's boards: pyOCD target type, OpenOCD board config
PROBE_TARGETS: dict[str, dict[str, str]] = {
    "nucleo-f746zg": {"pyocd": "stm32f746zgtx", "openocd": "board/st_nucleo_f7.cfg"},
    "nucleo-f767zi": {"pyocd": "stm32f767zitx", "openocd": "board/st_nucleo_f7.cfg"},
    "nucleo-h743zi": {"pyocd": "stm32h743zitx", "openocd": "board/st_nucleo_h743zi.cfg"},
    "nrf52840dk": {"pyocd": "nrf52840", "openocd": "board/nordic_nrf52_dk.cfg"},
    "rp2040": {"pyocd": "rp2040", "openocd": "board/pico-debug.cfg"},
    "mps2-an386": {"pyocd": "cortex_m", "openocd": "board/arm_mps2.cfg"},
    "mps2-an500": {"pyocd": "cortex_m", "openocd": "board/arm_mps2.cfg"},
}
# offsets in the RTT control block (codegen/board/o2m_rtt.h): up[0].buffer, up[0].wr_off
RTT_UP_BUFFER = 16 + 4 + 4 + 4
RTT_UP_WR_OFF = RTT_UP_BUFFER + 4 + 4
RTT_SYMBOL = "_SEGGER_RTT"
END_MARKER = "o2m_rtt_finished"
ARTIFACTS = ("app.elf", "app.hex", "app.bin")


@dataclass
class FlashPlan:
    """What a flash does: shell commands (lists of argv) and, for pyOCD, Python API calls."""

    commands: list[list[str]] = field(default_factory=list)
    api_calls: list[str] = field(default_factory=list)
    gdb_script: str | None = None

    def lines(self) -> list[str]:
        out = [" ".join(_quote(a) for a in cmd) for cmd in self.commands]
        out += self.api_calls
        if self.gdb_script:
            out += ["# gdb script:"] + [f"  {line}" for line in self.gdb_script.splitlines()]
        return out


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in " \"*$;") else arg


def _make_command(project: Path) -> list[str]:
    return ["make", "-C", str(project), *ARTIFACTS]


def gdb_script(board: Board, address: str, read_results: bool, dump_to: str) -> str:
    """Load through the GDB server, start at the reset vector, and (read_results) dump the RTT buffer."""
    vectors = board.flash_origin or 0
    lines = ["set pagination off", "set confirm off", f"target remote {address}", "load",
             f"set $sp = *(unsigned int *){vectors:#x}", f"set $pc = *(unsigned int *){vectors + 4:#x}",
             "set $xpsr = 0x01000000"]
    if read_results:
        lines += [f"break {END_MARKER}", "continue",
                  f"set $o2m_cb = (unsigned int)&{RTT_SYMBOL}",
                  f"set $o2m_buf = *(unsigned int *)($o2m_cb + {RTT_UP_BUFFER})",
                  f"set $o2m_len = *(unsigned int *)($o2m_cb + {RTT_UP_WR_OFF})",
                  'printf "O2M_RTT_BYTES %u\\n", $o2m_len',
                  f"dump binary memory {dump_to} $o2m_buf $o2m_buf + $o2m_len", "kill"]
    else:
        lines += ["detach"]
    lines.append("quit")
    return "\n".join(lines) + "\n"


def probe_target(board: Board, probe: str, override: str | None) -> str:
    if override:
        return override
    names = PROBE_TARGETS.get(board.name)
    if not names:
        raise UserError(f"no {probe} target known for board '{board.name}'; pass --target NAME")
    return names[probe]


def plan(project: Path, board: Board, probe: str, address: str | None, target: str | None,
         read_results: bool, dump_to: str = "rtt.bin") -> FlashPlan:
    p = FlashPlan(commands=[_make_command(project)])
    elf, hexfile = str(project / "app.elf"), str(project / "app.hex")
    if probe == "gdb":
        if not address:
            raise UserError("--probe gdb needs the server's HOST:PORT, e.g. --probe gdb localhost:3333")
        p.gdb_script = gdb_script(board, address, read_results, dump_to)
        p.commands.append([GDB, "-q", "-batch", "-x", "flash.gdb", elf])
    elif probe == "openocd":
        cfg = probe_target(board, "openocd", target)
        if read_results:
            ram = f"{board.ram_origin or 0x20000000:#x} {board.ram_bytes or 0x10000:#x}"
            p.commands.append([OPENOCD, "-f", cfg, "-c", "init", "-c", "reset halt", "-c", f"program {elf} verify",
                               "-c", f'rtt setup {ram} "SEGGER RTT"', "-c", "reset run", "-c", "rtt start",
                               "-c", "rtt server start 19021 0"])
            p.api_calls.append("# then read TCP localhost:19021 until the DONE line, and stop openocd")
        else:
            p.commands.append([OPENOCD, "-f", cfg, "-c", f"program {elf} verify reset exit"])
    elif probe == "pyocd":
        name = probe_target(board, "pyocd", target)
        p.api_calls += [
            "from pyocd.core.helpers import ConnectHelper",
            "from pyocd.flash.file_programmer import FileProgrammer",
            f"session = ConnectHelper.session_with_chosen_probe(target_override={name!r})",
            "session.open()",
            f"FileProgrammer(session).program({hexfile!r})",
            "session.board.target.reset_and_halt()",
        ]
        if read_results:
            p.api_calls += [
                f"session.board.target.set_breakpoint(<address of {END_MARKER} in app.elf>)",
                "session.board.target.resume()",
                "# wait until session.board.target.get_state() == Target.State.HALTED",
                f"cb = <address of {RTT_SYMBOL} in app.elf>",
                f"buf = session.board.target.read32(cb + {RTT_UP_BUFFER}); "
                f"n = session.board.target.read32(cb + {RTT_UP_WR_OFF})",
                "text = bytes(session.board.target.read_memory_block8(buf, n)).decode()",
            ]
        else:
            p.api_calls.append("session.board.target.resume()")
        p.api_calls.append("session.close()")
    else:
        raise UserError(f"--probe '{probe}': choose one of {', '.join(PROBES)}")
    return p


def _require(tool: str, probe: str) -> None:
    if shutil.which(tool) is None:
        raise UserError(f"'{tool}' not found on PATH; --probe {probe} needs it: {INSTALL[probe]}")


def _check_tools(probe: str) -> None:
    if probe == "gdb":
        _require(GDB, "gdb")
    elif probe == "openocd":
        _require(OPENOCD, "openocd")
    else:
        try:
            import pyocd  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            raise UserError(f"pyOCD is not installed; --probe pyocd needs it: {INSTALL['pyocd']}") from None


def _build(project: Path) -> None:
    if shutil.which("make") is None:
        raise UserError("make not found; apt-get install make")
    if shutil.which("arm-none-eabi-gcc") is None:
        raise UserError("arm-none-eabi-gcc not found; apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi")
    proc = subprocess.run(_make_command(project), capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        from onnx2mcu.simulator.run_c import first_error_lines

        raise UserError(f"build of {project} failed:\n  " + "\n  ".join(first_error_lines(proc.stdout + proc.stderr)))


def _symbol(elf: Path, name: str) -> int:
    proc = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16) & ~1
    raise UserError(f"{elf}: no symbol {name}; was the project compiled with --io rtt?")


def _run_gdb(project: Path, p: FlashPlan, timeout: float) -> str:
    _require(GDB, "gdb")
    with tempfile.TemporaryDirectory(prefix="o2m-flash-") as tmp:
        script = Path(tmp) / "flash.gdb"
        assert p.gdb_script is not None
        script.write_text(p.gdb_script.replace("dump binary memory rtt.bin", f"dump binary memory {tmp}/rtt.bin"))
        cmd = [GDB, "-q", "-batch", "-x", str(script), str(project / "app.elf")]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise UserError(f"{GDB} did not finish within {timeout:.0f} s (is the GDB server at the given "
                            "address, and does the program reach its end?)") from None
        dumped = Path(tmp) / "rtt.bin"
        if "Breakpoint" not in proc.stdout + proc.stderr and p.gdb_script and "break " in p.gdb_script:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise UserError(f"{GDB} could not run the program to {END_MARKER}: {' | '.join(tail)}")
        if "dump binary" in p.gdb_script:
            if not dumped.exists():
                raise UserError(f"{GDB} read no RTT buffer: {(proc.stderr or proc.stdout).strip()[-300:]}")
            return dumped.read_bytes().decode("ascii", errors="replace")
        if proc.returncode != 0:
            raise UserError(f"{GDB} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
        return ""


def _run_openocd(p: FlashPlan, read_results: bool, timeout: float) -> str:
    _require(OPENOCD, "openocd")
    if not read_results:
        proc = subprocess.run(p.commands[-1], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise UserError(f"openocd failed: {proc.stderr.strip()[-300:]}")
        return ""
    server = subprocess.Popen(p.commands[-1], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline and "DONE" not in text:
            try:
                with socket.create_connection(("localhost", 19021), timeout=2) as conn:
                    conn.settimeout(2)
                    while "DONE" not in text and time.monotonic() < deadline:
                        try:
                            chunk = conn.recv(4096)
                        except socket.timeout:
                            continue
                        if not chunk:
                            break
                        text += chunk.decode("ascii", errors="replace")
            except OSError:
                time.sleep(0.5)
        return text
    finally:
        server.terminate()
        server.wait(timeout=10)


def _run_pyocd(project: Path, board: Board, target: str | None, read_results: bool, timeout: float) -> str:
    try:
        from pyocd.core.helpers import ConnectHelper  # type: ignore[import-not-found]
        from pyocd.core.target import Target  # type: ignore[import-not-found]
        from pyocd.flash.file_programmer import FileProgrammer  # type: ignore[import-not-found]
    except ImportError:
        raise UserError(f"pyOCD is not installed; --probe pyocd needs it: {INSTALL['pyocd']}") from None
    name = probe_target(board, "pyocd", target)
    session = ConnectHelper.session_with_chosen_probe(target_override=name)
    if session is None:
        raise UserError("pyOCD found no debug probe; plug the board in (and check udev rules)")
    session.open()
    try:
        chip = session.board.target
        FileProgrammer(session).program(str(project / "app.hex"))
        chip.reset_and_halt()
        if not read_results:
            chip.resume()
            return ""
        elf = project / "app.elf"
        chip.set_breakpoint(_symbol(elf, END_MARKER))
        chip.resume()
        deadline = time.monotonic() + timeout
        while chip.get_state() != Target.State.HALTED:
            if time.monotonic() > deadline:
                raise UserError(f"the board did not reach {END_MARKER} within {timeout:.0f} s")
            time.sleep(0.05)
        cb = _symbol(elf, RTT_SYMBOL)
        buf, n = chip.read32(cb + RTT_UP_BUFFER), chip.read32(cb + RTT_UP_WR_OFF)
        return bytes(chip.read_memory_block8(buf, n)).decode("ascii", errors="replace")
    finally:
        session.close()


def expected_from_simulator(project: Path, report: dict) -> dict[str, np.ndarray]:
    from onnx2mcu.api import simulate
    from onnx2mcu.build import SOURCE_MODEL
    from onnx2mcu.runner import load_project_inputs

    values = load_project_inputs(project, report, None)
    shapes = {name: info["shape"] for name, info in report["inputs"].items()}
    sim = simulate(str(project / SOURCE_MODEL), input_shapes=shapes, inputs=values, check_onnxruntime=False)
    return sim.result.outputs


def flash(project_dir: str, probe: str, address: str | None = None, target: str | None = None,
          read_results: bool = False, dry_run: bool = False, timeout: float = 120.0,
          rtol: float = 1e-4, atol: float = 1e-5) -> dict:
    """Build, program, and (read_results) read back and compare; returns a JSON-friendly summary."""
    from onnx2mcu.runner import read_report

    project = Path(project_dir)
    if not project.is_dir():
        raise UserError(f"{project}: no such folder; create it with `onnx2mcu compile MODEL --board B -o {project}`")
    report = read_report(project)
    board = board_of_summary(report["board"])
    if board.is_host:
        raise UserError(f"{project}: compiled for the host; flash needs a board (compile with --board NAME)")
    if read_results and report.get("io", "semihosting") != "rtt":
        raise UserError(f"{project}: --read-results reads the outputs over RTT; compile with --io rtt")
    p = plan(project, board, probe, address, target, read_results)
    data: dict = {"dir": str(project), "board": board.name, "probe": probe, "plan": p.lines()}
    if dry_run:
        return data
    _check_tools(probe)  # before a build that may take minutes
    _build(project)
    if probe == "gdb":
        text = _run_gdb(project, p, timeout)
    elif probe == "openocd":
        text = _run_openocd(p, read_results, timeout)
    else:
        text = _run_pyocd(project, board, target, read_results, timeout)
    data["flashed"] = [str(project / a) for a in ARTIFACTS]
    if not read_results:
        return data
    from onnx2mcu.simulator.compare import compare
    from onnx2mcu.simulator.run_c import parse_outputs

    wire = {o["wire_name"]: o["name"] for o in report["c_io"]["outputs"]}
    outputs = {wire[k]: v for k, v in parse_outputs(text).items()}
    for name, info in report["outputs"].items():
        outputs[name] = outputs[name].reshape(info["shape"])
    expected = expected_from_simulator(project, report)
    agreement = compare(outputs, expected)
    agree = all(np.allclose(np.asarray(outputs[n], np.float64), np.asarray(expected[n], np.float64),
                            rtol=rtol, atol=atol) for n in expected)
    data.update(max_abs_err=agreement.max_abs_err, max_rel_err=agreement.max_rel_err, agree=bool(agree),
                reference="simulator", outputs={k: np.asarray(v).tolist() for k, v in outputs.items()})
    return data
