"""`check` on any board: build for the board itself, run on the emulated board of its core family.

QEMU emulates only a few boards. For the others `check` still builds the real board's
project (the link proves it fits; flash and RAM come from its ELF) and runs the same model,
built for the emulated stand-in of the same core, under QEMU; the table labels that row
as a stand-in (docs/ARCHITECTURE.md, "check").
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from onnx2mcu.targets import BOARDS, Board, get_board

# core -> the registry's emulated board of that family; Cortex-M0+ code (ARMv6-M, a subset of
# the M3's ARMv7-M) runs on the M3 image, rebuilt for the M3 as every stand-in run is
STAND_IN: dict[str, str] = {"cortex-m0plus": "mps2-an385", "cortex-m3": "mps2-an385",
                            "cortex-m4": "mps2-an386", "cortex-m7": "mps2-an500",
                            "cortex-m33": "mps2-an505", "cortex-m55": "mps3-an547"}


def stand_in(board: Board | str) -> Board | None:
    """The emulated board that runs code for `board`'s core, or None."""
    board = get_board(board)
    if board.qemu_machine:
        return board
    name = STAND_IN.get(board.core)
    return BOARDS[name] if name in BOARDS else None


def board_build(out_dir: str | Path, board: Board) -> dict:
    """Build the real board's project; its ELF's flash and RAM bytes."""
    from onnx2mcu.simulator.elf import elf_sizes
    from onnx2mcu.simulator.run_c import build

    sizes = elf_sizes(build(out_dir, board))
    return {"flash_bytes": sizes["flash_bytes"], "ram_bytes": sizes["ram_bytes"]}


def agrees(stage: Mapping, report_outputs: Mapping[str, Mapping], rtol: float | None,
           atol: float | None) -> bool:
    """Whether a stage's outputs match the reference: exactly when every output is an
    integer type and no tolerance was given, else within atol or rtol (max |diff| / max |ref|)."""
    if stage is None or stage.get("max_abs_err") is None:
        return True
    integer = all(np.issubdtype(np.dtype(info["dtype"]), np.integer) or info["dtype"] == "bool"
                  for info in report_outputs.values())
    if integer and rtol is None and atol is None:
        return stage["max_abs_err"] == 0
    rtol = 1e-4 if rtol is None else rtol
    atol = 1e-5 if atol is None else atol
    return stage["max_abs_err"] <= atol or stage["max_rel_err"] <= rtol
