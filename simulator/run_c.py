"""Build a generated C project and run it on the host or under QEMU; read the outputs back.

    build(project_dir, target)                    -> Path of app.elf (board) or app (host)
    run_host(project_dir, timeout=...)            -> RunResult
    run_qemu(project_dir, board, count_instructions=True, timeout=...) -> RunResult
    run_project(project_dir, target, ...)         -> RunResult (host or QEMU by target)
    parse_outputs(stdout)                         -> {name: np.ndarray}

Read-back protocol (codegen/board/o2m_io.h writes it; the same on host and board):
    OUT <name> <count> [<dtype>]      dtype: f32 (default), i32, u32, i16, u16, i8, u8, bool, i64
    <count> hex words, white-space separated, over as many lines as needed
                                      (8 hex digits each: f32 = IEEE-754 bits, integer types =
                                       the value as a 32-bit two's-complement word; i64: 16 digits)
    ... more OUT blocks ...
    DONE
Lines outside OUT blocks are ignored, so the program may print other things.

Instruction counts come from a small TCG plugin (simulator/qemu_plugin.c), compiled
with the host gcc on first use and cached under the user cache directory
($ONNX2MCU_CACHE_DIR, else $XDG_CACHE_HOME/onnx2mcu, else ~/.cache/onnx2mcu), keyed by
a hash of its source.  The count is exact and repeatable: every instruction of every
translation block executed, from reset to exit.  When the ELF has o2m_mark_begin /
o2m_mark_end (o2m_io.c), `region_instructions` is the count between them.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from onnx2mcu.errors import UserError
from onnx2mcu.ir import DType
from onnx2mcu.targets import BOARDS, Board, get_board

FAULT_EXIT_CODE = 99  # codegen/board/startup.c: a HardFault or unexpected exception
DEFAULT_QEMU_TIMEOUT = 120.0
DEFAULT_HOST_TIMEOUT = 60.0

ARM_GCC = "arm-none-eabi-gcc"
ARM_NM = "arm-none-eabi-nm"
QEMU = "qemu-system-arm"
HOST_CC = "gcc"
EXTRA_CFLAGS_ENV = "ONNX2MCU_HOST_CFLAGS"
"""Extra flags for every host build (`make EXTRA_CFLAGS=...`): the sanitizer test and the
deliberately-wrong-kernel test use it; the generated files do not change."""

_INSTALL_HINT = ("install them with: apt-get install --no-install-recommends gcc-arm-none-eabi "
                 "libnewlib-arm-none-eabi qemu-system-arm")


@dataclass
class RunResult:
    stdout: str
    stderr: str
    exit_code: int  # main's return value (QEMU: via semihosting; host: negative = killed by signal)
    instructions: int | None = None  # guest instructions from reset to exit (QEMU with counting only)
    region_instructions: int | None = None  # between o2m_mark_begin and o2m_mark_end, summed
    regions: int = 0  # how many begin..end regions were counted
    # profile builds (run_qemu(step_symbol=...)): the counter at each entry to the step marker
    step_counts: list[int] = field(default_factory=list)
    seconds: float = 0.0
    command: list[str] = field(default_factory=list)

    @property
    def faulted(self) -> bool:
        return self.exit_code == FAULT_EXIT_CODE and "onnx2mcu: FAULT" in self.stderr

    def outputs(self) -> dict[str, np.ndarray]:
        return parse_outputs(self.stdout)


# ----- tools -------------------------------------------------------------------
def have_tool(name: str) -> bool:
    return shutil.which(name) is not None


def _require(tool: str, what: str) -> None:
    if not have_tool(tool):
        hint = _INSTALL_HINT if tool != HOST_CC else "install gcc and make (apt-get install gcc make libc6-dev)"
        raise UserError(f"'{tool}' not found on PATH; it is needed to {what}; {hint}")


# ----- build -------------------------------------------------------------------
_LD_PREFIX = re.compile(r"^\S*/(?:arm-none-eabi-)?ld(?:\.bfd)?: ")
_ERROR_LINE = re.compile(
    r"(error|undefined reference|will not fit in region|overflowed by|multiple definition|"
    r"cannot find|No rule to make target|onnx2mcu: )",
    re.IGNORECASE,
)
_NOISE = re.compile(r"^(collect2: error: ld returned|make(\[\d+\])?: \*\*\*)")


def first_error_lines(output: str, limit: int = 12) -> list[str]:
    """The compiler's / linker's first error lines, onnx2mcu's own ASSERT messages first."""
    ours: list[str] = []
    others: list[str] = []
    for raw in output.splitlines():
        line = _LD_PREFIX.sub("ld: ", raw.rstrip())
        if not line or _NOISE.search(line) or not _ERROR_LINE.search(line):
            continue
        (ours if "onnx2mcu: " in line else others).append(line)
    lines = ours + others
    if not lines:
        lines = [ln for ln in output.splitlines() if ln.strip()][-limit:]
    return lines[:limit]


def build(project_dir: "str | os.PathLike", target: "Board | str | None" = None, jobs: int = 2,
          make_vars: "dict[str, object] | None" = None, timeout: float = 600.0) -> Path:
    """Run `make` in project_dir; return the built program (app.elf for boards, app for host).

    `target` only selects which tools must exist and what the product is called; the
    Makefile written by codegen/board_project.py decides the rest. `make_vars` become
    `make NAME=value` (e.g. {"RAM_SIZE": 0x40000}).
    """
    project = Path(project_dir)
    if not (project / "Makefile").exists():
        raise UserError(f"{project}: no Makefile; generate the project first (codegen.board_project.write_board_files)")
    board = get_board(target) if target is not None else _board_from_makefile(project)
    _require("make", "build the generated project")
    _require(HOST_CC if board.is_host else ARM_GCC, f"build for {board.name}")
    cmd = ["make", "-C", str(project), f"-j{max(1, int(jobs))}"]
    make_vars = dict(make_vars or {})
    extra = os.environ.get(EXTRA_CFLAGS_ENV)
    if extra and board.is_host and "EXTRA_CFLAGS" not in make_vars:
        make_vars["EXTRA_CFLAGS"] = extra  # the CFLAGS hook of Makefile.host.j2 (sanitizers, test faults)
    for key, value in make_vars.items():
        cmd.append(f"{key}={value}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UserError(f"build of {project} for {board.name} took more than {timeout:.0f} s; stopped") from None
    if proc.returncode != 0:
        lines = first_error_lines(proc.stdout + "\n" + proc.stderr)
        raise UserError(f"build of {project} for {board.name} failed:\n  " + "\n  ".join(lines))
    product = project / ("app" if board.is_host else "app.elf")
    if not product.exists():
        raise UserError(f"build of {project} finished but {product.name} is missing; is the Makefile an onnx2mcu one?")
    return product


def _board_from_makefile(project: Path) -> Board:
    first = (project / "Makefile").read_text(encoding="utf-8", errors="replace").splitlines()[:1]
    m = re.search(r"for board (\S+?):", first[0]) if first else None
    return get_board(m.group(1) if m else "host")


# ----- run on the host -----------------------------------------------------------
def run_host(project_dir: "str | os.PathLike", timeout: float = DEFAULT_HOST_TIMEOUT,
             args: "list[str] | tuple[str, ...]" = ()) -> RunResult:
    """Run the host build's ./app; exit_code is main's return value (negative: killed by a signal)."""
    exe = Path(project_dir) / "app"
    if not exe.exists():
        raise UserError(f"{exe}: not built; run build(project_dir, 'host') first")
    cmd = [str(exe.resolve()), *args]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(project_dir))
    except subprocess.TimeoutExpired as exc:
        raise UserError(f"{exe} ran longer than {timeout:.0f} s and was stopped; partial output:\n"
                        f"{_tail(exc.stdout)}") from None
    return RunResult(proc.stdout, proc.stderr, proc.returncode, seconds=time.monotonic() - start, command=cmd)


# ----- run under QEMU -------------------------------------------------------------
def _cache_dir() -> Path:
    env = os.environ.get("ONNX2MCU_CACHE_DIR")
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "onnx2mcu"
    try:
        base.mkdir(parents=True, exist_ok=True)
        probe = base / f".probe{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return base
    except OSError:
        fallback = Path(tempfile.gettempdir()) / f"onnx2mcu-cache-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


_PLUGIN_CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-shared", "-fPIC"]


def plugin_path() -> Path:
    """The instruction-counting plugin (.so), built from qemu_plugin.c on first use and cached."""
    source = resources.files("onnx2mcu.simulator").joinpath("qemu_plugin.c").read_bytes()
    key = hashlib.sha256(source + " ".join(_PLUGIN_CFLAGS).encode()).hexdigest()[:16]
    target = _cache_dir() / f"o2m_icount-{key}.so"
    if target.exists():
        return target
    _require(HOST_CC, "build the QEMU instruction-counting plugin")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "qemu_plugin.c"
        src.write_bytes(source)
        out = Path(tmp) / target.name
        proc = subprocess.run([HOST_CC, *_PLUGIN_CFLAGS, "-o", str(out), str(src)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError("building the QEMU instruction-counting plugin failed:\n  "
                            + "\n  ".join(first_error_lines(proc.stderr)))
        os.replace(out, target)  # atomic: parallel builders just race to the same content
    return target


def function_addresses(elf: "str | os.PathLike", names: "set[str]") -> dict[str, int]:
    """Addresses (Thumb bit cleared) of the named functions of the ELF that it has."""
    if not have_tool(ARM_NM):
        return {}
    proc = subprocess.run([ARM_NM, str(elf)], capture_output=True, text=True)
    found: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in names and parts[1] in "Tt":
            found[parts[2]] = int(parts[0], 16) & ~1
    return found


def marker_addresses(elf: "str | os.PathLike") -> tuple[int, int] | None:
    """Addresses of o2m_mark_begin / o2m_mark_end in the ELF, or None if absent."""
    found = function_addresses(elf, {"o2m_mark_begin", "o2m_mark_end"})
    if "o2m_mark_begin" in found and "o2m_mark_end" in found:
        return found["o2m_mark_begin"], found["o2m_mark_end"]
    return None


_ICOUNT = re.compile(r"o2m_icount total=(\d+) region=(\d+) regions=(\d+)")
_STEP = re.compile(r"^o2m_step (\d+) (\d+)$", re.MULTILINE)


def qemu_command(elf: "str | os.PathLike", board: "Board | str") -> list[str]:
    board = get_board(board)
    return [QEMU, "-M", board.qemu_machine or "", "-nographic", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]


def run_qemu(project_dir: "str | os.PathLike", board: "Board | str", count_instructions: bool = True,
             timeout: float = DEFAULT_QEMU_TIMEOUT, elf: "str | os.PathLike | None" = None,
             step_symbol: str | None = None) -> RunResult:
    """Run app.elf on the board's QEMU machine with semihosting, under a timeout.

    exit_code is main's return value (FAULT_EXIT_CODE after a fault, with a line on stderr).
    With count_instructions, `instructions` is the exact number of guest instructions executed;
    with `step_symbol` (a profile build's <prefix>_profile_mark), `step_counts` holds the
    counter at each entry to that function.
    """
    board = get_board(board)
    if board.qemu_machine is None:
        emulated = [name for name, b in BOARDS.items() if b.qemu_machine]
        raise UserError(f"board '{board.name}' has no QEMU model; emulated boards: {', '.join(emulated)}")
    _require(QEMU, f"emulate {board.name}")
    elf_path = Path(elf) if elf is not None else Path(project_dir) / "app.elf"
    if not elf_path.exists():
        raise UserError(f"{elf_path}: not built; run build(project_dir, '{board.name}') first")
    cmd = qemu_command(elf_path.resolve(), board)
    with tempfile.TemporaryDirectory(prefix="o2m-qemu-") as tmp:
        log = Path(tmp) / "plugin.log"
        if count_instructions:
            plugin = str(plugin_path())
            markers = marker_addresses(elf_path)
            if markers is not None:
                plugin += f",begin={markers[0]:#x},end={markers[1]:#x}"
            if step_symbol is not None:
                step = function_addresses(elf_path, {step_symbol}).get(step_symbol)
                if step is None:
                    raise UserError(f"{elf_path} has no function {step_symbol}: not a profile build "
                                    f"(compile the model again, then build with -D<PREFIX>_PROFILE_MARKS)")
                plugin += f",step={step:#x}"
            cmd += ["-plugin", plugin, "-d", "plugin", "-D", str(log)]
        start = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(project_dir),
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise UserError(f"{elf_path} under qemu-system-arm -M {board.qemu_machine} ran longer than "
                            f"{timeout:.0f} s and was stopped (endless loop? raise the timeout for big models); "
                            f"partial output:\n{_tail(exc.stdout)}") from None
        seconds = time.monotonic() - start
        log_text = log.read_text(errors="replace") if log.exists() else ""
    result = RunResult(proc.stdout, proc.stderr, proc.returncode, seconds=seconds, command=cmd)
    if count_instructions:
        m = _ICOUNT.search(log_text)
        if m is None:
            if proc.returncode != 0 and "plugin" in proc.stderr.lower():
                raise UserError(f"qemu-system-arm could not use the instruction-counting plugin: "
                                f"{proc.stderr.strip()[:500]} (run with count_instructions=False to skip counting)")
            raise UserError(f"no instruction count from the QEMU plugin (exit code {proc.returncode}); "
                            f"stderr: {proc.stderr.strip()[:500]}")
        result.instructions = int(m.group(1))
        if markers is not None and int(m.group(3)) > 0:
            result.region_instructions = int(m.group(2))
            result.regions = int(m.group(3))
        result.step_counts = [int(c) for _, c in sorted((int(i), c) for i, c in _STEP.findall(log_text))]
    return result


def run_project(project_dir: "str | os.PathLike", target: "Board | str", timeout: float | None = None,
                count_instructions: bool = True) -> RunResult:
    """Run a built project: the host binary for `host`, else QEMU (the board must be emulated)."""
    board = get_board(target)
    if board.is_host:
        return run_host(project_dir, timeout=timeout or DEFAULT_HOST_TIMEOUT)
    return run_qemu(project_dir, board, count_instructions=count_instructions,
                    timeout=timeout or DEFAULT_QEMU_TIMEOUT)


def _tail(text: "str | bytes | None", lines: int = 20) -> str:
    if text is None:
        return "(none)"
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:]) or "(none)"


# ----- read-back protocol ----------------------------------------------------------
# dtype token (the dtype's C suffix, ir.DTYPE_TABLE) -> (hex digits per word, numpy dtype of the
# result); u16 has an o2m_out_u16 in the harness but no IR dtype
_DTYPES: dict[str, tuple[int, np.dtype]] = {
    dtype.suffix: (16 if dtype.itemsize == 8 else 8,
                   np.dtype(np.bool_) if dtype is DType.BOOL else dtype.numpy) for dtype in DType}
_DTYPES["u16"] = (8, np.dtype(np.uint16))


def _decode(name: str, dtype: str, words: list[str]) -> np.ndarray:
    digits, np_dtype = _DTYPES[dtype]
    if any(len(w) != digits for w in words):
        bad = next(w for w in words if len(w) != digits)
        raise UserError(f"output '{name}': word '{bad}' is not {digits} hex digits")
    try:
        raw = bytes.fromhex("".join(words))
    except ValueError:
        raise UserError(f"output '{name}': non-hex characters in its words") from None
    if digits == 16:
        return np.frombuffer(raw, dtype=">u8").astype(np.uint64).view(np.int64)
    u32 = np.frombuffer(raw, dtype=">u4").astype(np.uint32)
    if dtype == "f32":
        return u32.view(np.float32)
    if dtype == "u32":
        return u32
    s32 = u32.view(np.int32)
    if dtype == DType.INT32.suffix:
        return s32
    if dtype == DType.BOOL.suffix:
        return s32 != 0
    info = np.iinfo(np_dtype)
    if s32.size and (s32.min() < info.min or s32.max() > info.max):
        raise UserError(f"output '{name}': values outside {dtype}")
    return s32.astype(np_dtype)


def parse_outputs(stdout: str, require_done: bool = True) -> dict[str, np.ndarray]:
    """Decode the OUT/DONE blocks printed by the generated main (see the module docstring).

    Returns {name: 1-D array} in print order, bit-exact. Raises UserError on a malformed
    block, or (with require_done) when DONE is missing, i.e. the program stopped early.
    """
    lines = stdout.splitlines()
    outputs: dict[str, np.ndarray] = {}
    done = False
    i = 0
    while i < len(lines):
        parts = lines[i].split()
        i += 1
        if not parts:
            continue
        if parts == ["DONE"]:
            done = True
            break
        if parts[0] != "OUT":
            continue
        if len(parts) not in (3, 4) or not parts[2].isdigit():
            raise UserError(f"malformed output header '{lines[i - 1].strip()}': expected 'OUT <name> <count> [dtype]'")
        name, count = parts[1], int(parts[2])
        dtype = parts[3] if len(parts) == 4 else "f32"
        if dtype not in _DTYPES:
            raise UserError(f"output '{name}': unknown dtype '{dtype}' (known: {', '.join(_DTYPES)})")
        if name in outputs:
            raise UserError(f"output '{name}' printed twice")
        words: list[str] = []
        while len(words) < count:
            if i >= len(lines):
                raise UserError(f"output '{name}': expected {count} words, got {len(words)} before the end "
                                f"of the program's output (did it crash?)")
            more = lines[i].split()
            i += 1
            if more and more[0] in {"OUT", "DONE"}:
                raise UserError(f"output '{name}': expected {count} words, got {len(words)}")
            words.extend(more)
        if len(words) != count:
            raise UserError(f"output '{name}': expected {count} words, got {len(words)}")
        outputs[name] = _decode(name, dtype, words)
    if require_done and not done:
        raise UserError("the program's output has no DONE line: it stopped before printing all outputs "
                        f"(last lines: {_tail(stdout, 3)!r})")
    return outputs
