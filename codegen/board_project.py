"""Board project files: startup code, linker script and Makefile around the app's C sources.

    write_board_files(board, out_dir, app_sources, stack_bytes=..., heap_bytes=...)

writes into `out_dir`
    startup.c   vector table, Reset_Handler, fault handlers (MCU boards only)
    board.ld    linker script: MEMORY from the board, ASSERTs naming RAM / FLASH on overflow
    Makefile    arm-none-eabi-gcc (or gcc for `host`) building app.elf (host: app)
    o2m_io.c/h  the output read-back protocol (OUT/DONE lines) and instruction-count markers
The app's own sources (e.g. model.c, main.c) are expected in out_dir already or
later; they are only named in the Makefile (paths relative to out_dir).
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

from onnx2mcu.budget import DEFAULT_HEAP_BYTES, DEFAULT_STACK_BYTES
from onnx2mcu.errors import UserError
from onnx2mcu.fileio import write_atomic
from onnx2mcu.targets import Board, get_board

RUNTIME_FILES = ("o2m_io.c", "o2m_io.h")
RTT_FILES = ("o2m_rtt.c", "o2m_rtt.h")
IO_CHANNELS = ("semihosting", "rtt")


def _template_text(name: str) -> str:
    return resources.files("onnx2mcu.codegen").joinpath("board", name).read_text(encoding="utf-8")


def _render(name: str, **context) -> str:
    import jinja2

    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.from_string(_template_text(name)).render(**context)


def _write(path: Path, text: str) -> None:
    write_atomic(path, text)


def _check_sources(out_dir: Path, app_sources: Iterable[str]) -> list[str]:
    names: list[str] = []
    for src in app_sources:
        p = Path(src)
        if p.is_absolute():
            try:
                p = p.relative_to(out_dir.resolve())
            except ValueError:
                raise UserError(
                    f"app source '{src}' is outside the project folder {out_dir}; copy it in and name it relatively"
                ) from None
        text = p.as_posix()
        if not text.endswith(".c"):
            raise UserError(f"app source '{src}' is not a .c file")
        if any(ch.isspace() for ch in text) or "$" in text:
            raise UserError(f"app source '{src}': file names with spaces or '$' cannot go in a Makefile")
        if text in RUNTIME_FILES + RTT_FILES or text == "startup.c":
            raise UserError(f"app source '{src}' clashes with a file the board project writes itself")
        if text not in names:
            names.append(text)
    return names


def write_board_files(
    board: "Board | str",
    out_dir: "str | os.PathLike",
    app_sources: Sequence[str],
    stack_bytes: int = DEFAULT_STACK_BYTES,
    heap_bytes: int = DEFAULT_HEAP_BYTES,
    extra_cflags: Sequence[str] = (),
    io: str = "semihosting",
    rtt_buffer_bytes: int = 1024,
) -> list[Path]:
    """Write startup.c, board.ld, Makefile and o2m_io.{c,h} for `board` into out_dir.

    Returns the paths written. `app_sources` are .c files relative to out_dir.
    For the `host` pseudo-board only the Makefile and o2m_io.{c,h} are written.
    """
    board = get_board(board)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if stack_bytes <= 0 or heap_bytes < 0:
        raise UserError(f"stack must be > 0 and heap >= 0 bytes (got stack={stack_bytes}, heap={heap_bytes})")
    sources = _check_sources(out, app_sources)
    if io not in IO_CHANNELS:
        raise UserError(f"--io '{io}': choose one of {', '.join(IO_CHANNELS)}")
    if io == "rtt" and board.is_host:
        raise UserError("--io rtt needs an MCU board (--board ...); the host build prints on stdout")
    written: list[Path] = []
    runtime = RUNTIME_FILES + (RTT_FILES if io == "rtt" else ())
    for name in runtime:
        _write(out / name, _template_text(name))
        written.append(out / name)
    if io == "rtt":
        # the whole output fits, so a debugger may read it at the end (o2m_rtt.h)
        extra_cflags = [*extra_cflags, "-DO2M_IO_RTT", f"-DO2M_RTT_BUFFER_BYTES={int(rtt_buffer_bytes)}"]
        sources = ["o2m_rtt.c", *sources]

    if board.is_host:
        _write(out / "Makefile", _render("Makefile.host.j2", sources=["o2m_io.c", *sources],
                                         extra_cflags=list(extra_cflags)))
        written.append(out / "Makefile")
        return written

    # 8-byte alignment keeps the AAPCS stack alignment when the sizes are used as-is.
    stack_bytes = (stack_bytes + 7) // 8 * 8
    heap_bytes = (heap_bytes + 7) // 8 * 8
    _write(out / "startup.c", _template_text("startup.c"))
    _write(out / "board.ld", _render("board.ld.j2", board=board, stack_bytes=stack_bytes, heap_bytes=heap_bytes))
    _write(out / "Makefile", _render("Makefile.j2", board=board, sources=["startup.c", "o2m_io.c", *sources],
                                     extra_cflags=list(extra_cflags), io=io))
    written += [out / "startup.c", out / "board.ld", out / "Makefile"]
    return written
