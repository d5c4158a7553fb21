"""A custom board from a TOML file (`--board-file board.toml`): the registry's `Board`, made
from the few facts a user knows about their board.

    name = "my-f411"            # optional (default: the file's stem); not a built-in board's name
    core = "cortex-m4"          # cortex-m0plus | cortex-m3 | cortex-m4 | cortex-m7 | cortex-m33 | cortex-m55
    flash = "512K"              # bytes: an integer, or "512K", "512 KiB", "1M", "0x80000"
    ram = "128 KiB"
    clock_hz = 100_000_000      # optional: for the latency estimate
    flash_origin = 0x08000000   # optional (default 0x0, the Cortex-M code region)
    ram_origin = 0x20000000     # optional (default 0x20000000, the Cortex-M SRAM region)
    fpu = "single"              # optional: false | "single" | "double" (default: the core's usual FPU)
    qemu_machine = "mps2-an386" # optional: one of the registry's emulated machines
    vector_origin = 0x0         # optional, with vector_bytes: where the core reads its reset vector
    vector_bytes = "512K"       #   table when that is not flash_origin (a BOOT region for it alone)
    description = "..."         # optional

    [[external]]                # optional, at most one: memory-mapped flash/PSRAM for weight tables
    origin = 0x90000000
    size = "16M"

Every mistake is one line naming the file and the field (UserError: exit 2).  The compiler
flags and kernel preference follow from the core and FPU, as for the built-in boards.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from onnx2mcu.errors import UserError
from onnx2mcu.targets import BOARDS, DSP_KERNELS, Board, get_board

# core -> (gcc -mcpu, has DSP, default FPU, the FPUs it may have, -mfpu per FPU)
CORES: dict[str, tuple[str, bool, str | None, tuple, dict[str, str]]] = {
    "cortex-m0plus": ("cortex-m0plus", False, None, (None,), {}),
    "cortex-m3": ("cortex-m3", False, None, (None,), {}),
    "cortex-m4": ("cortex-m4", True, "single", (None, "single"), {"single": "fpv4-sp-d16"}),
    "cortex-m7": ("cortex-m7", True, "single", (None, "single", "double"),
                  {"single": "fpv5-sp-d16", "double": "fpv5-d16"}),
    "cortex-m33": ("cortex-m33", True, "single", (None, "single"), {"single": "fpv5-sp-d16"}),
    # the M55's FPU (FPv5 with double precision, and MVE) is gcc's default for -mcpu=cortex-m55
    "cortex-m55": ("cortex-m55", True, "double", (None, "double"), {"double": ""}),
}
FIELDS = ("name", "core", "flash", "ram", "clock_hz", "flash_origin", "ram_origin", "fpu",
          "qemu_machine", "vector_origin", "vector_bytes", "description", "external")
EXTERNAL_FIELDS = ("origin", "size", "name")
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024 ** 2, "mb": 1024 ** 2,
          "mib": 1024 ** 2, "g": 1024 ** 3, "gb": 1024 ** 3, "gib": 1024 ** 3}


def parse_bytes(value, where: str) -> int:
    """An integer, or a string such as "512K", "512 KiB", "1M", "0x80000" -> bytes (> 0)."""
    if isinstance(value, bool):
        raise UserError(f"{where}: expected a size in bytes (e.g. 1048576, \"1M\", \"512 KiB\"), got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(0x[0-9a-fA-F]+|\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if not m or m.group(2).lower() not in _UNITS:
            raise UserError(f"{where}: expected a size in bytes (e.g. 1048576, \"1M\", \"512 KiB\"), got {value!r}")
        text, unit = m.group(1), m.group(2).lower()
        scaled = (int(text, 16) if text.lower().startswith("0x") else float(text)) * _UNITS[unit]
        if scaled != int(scaled):
            raise UserError(f"{where}: {value!r} is not a whole number of bytes")
        number = int(scaled)
    else:
        raise UserError(f"{where}: expected a size in bytes (e.g. 1048576, \"1M\", \"512 KiB\"), got {value!r}")
    if number <= 0:
        raise UserError(f"{where}: must be more than 0 bytes, got {value!r}")
    return number


def _address(value, where: str) -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*0x[0-9a-fA-F]+\s*", value):
        value = int(value, 16)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 32:
        raise UserError(f"{where}: expected a 32-bit address such as 0x20000000, got {value!r}")
    return value


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


def load_board_file(path: "str | os.PathLike") -> Board:
    """The Board a TOML file describes; UserError (one line) on a missing file, bad TOML or a bad field."""
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--board-file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--board-file {path}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"--board-file {path}: not valid TOML ({exc})") from None
    if "board" in data and isinstance(data["board"], dict) and len(data) == 1:
        data = data["board"]  # a [board] table is accepted too
    return board_from_dict(data, str(path), default_name=path.stem)


def board_from_dict(data: dict, source: str, default_name: str = "custom") -> Board:
    """The Board of a parsed board file (`source` names it in messages)."""
    unknown = [k for k in data if k not in FIELDS]
    if unknown:
        raise UserError(f"{source}: unknown field '{unknown[0]}'; the fields are {', '.join(FIELDS)}")
    for key in ("core", "flash", "ram"):
        if key not in data:
            raise UserError(f"{source}: missing field '{key}' (a board file needs core, flash and ram)")
    name = _text(data.get("name", default_name), f"{source}: field 'name'").lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        raise UserError(f"{source}: field 'name': {name!r} may hold only letters, digits, '.', '_' and '-'")
    if name in BOARDS:
        raise UserError(f"{source}: field 'name': '{name}' is a built-in board; choose another name")
    core = _text(data["core"], f"{source}: field 'core'").lower().replace("_", "-").replace("+", "plus")
    if core not in CORES:
        raise UserError(f"{source}: field 'core': '{data['core']}' is not one of {', '.join(CORES)}")
    mcpu, dsp, default_fpu, fpus, mfpu = CORES[core]
    fpu = data.get("fpu", default_fpu)
    if fpu is True:
        fpu = default_fpu or "single"
    if fpu is False:
        fpu = None
    if fpu not in fpus:
        allowed = ", ".join("false" if f is None else f'"{f}"' for f in fpus)
        raise UserError(f"{source}: field 'fpu': {data.get('fpu')!r} for {core}: choose {allowed}")
    flags = [f"-mcpu={mcpu}", "-mthumb", f"-mfloat-abi={'hard' if fpu else 'soft'}"]
    if fpu and mfpu.get(fpu):
        flags.append(f"-mfpu={mfpu[fpu]}")
    clock = data.get("clock_hz")
    if clock is not None and (isinstance(clock, bool) or not isinstance(clock, int) or clock <= 0):
        raise UserError(f"{source}: field 'clock_hz': expected a frequency in Hz such as 64000000, got {clock!r}")
    qemu = data.get("qemu_machine")
    if qemu is not None:
        machines = sorted({b.qemu_machine for b in BOARDS.values() if b.qemu_machine})
        if qemu not in machines:
            raise UserError(f"{source}: field 'qemu_machine': '{qemu}' is not one of {', '.join(machines)}")
    ext_origin = ext_bytes = None
    external = data.get("external")
    if external is not None:
        items = [external] if isinstance(external, dict) else external
        if not isinstance(items, list) or not all(isinstance(e, dict) for e in items):
            raise UserError(f"{source}: field 'external': expected [[external]] tables with origin and size")
        if len(items) > 1:
            raise UserError(f"{source}: field 'external': {len(items)} memories given; one external region "
                            "(the weight tables that do not fit the flash) is supported")
        if items:
            ext = items[0]
            bad = [k for k in ext if k not in EXTERNAL_FIELDS]
            if bad:
                raise UserError(f"{source}: field 'external.{bad[0]}' unknown; the fields are "
                                f"{', '.join(EXTERNAL_FIELDS)}")
            for key in ("origin", "size"):
                if key not in ext:
                    raise UserError(f"{source}: field 'external' needs '{key}'")
            ext_origin = _address(ext["origin"], f"{source}: field 'external.origin'")
            ext_bytes = parse_bytes(ext["size"], f"{source}: field 'external.size'")
    flash = parse_bytes(data["flash"], f"{source}: field 'flash'")
    ram = parse_bytes(data["ram"], f"{source}: field 'ram'")
    flash_origin = _address(data.get("flash_origin", 0), f"{source}: field 'flash_origin'")
    ram_origin = _address(data.get("ram_origin", 0x2000_0000), f"{source}: field 'ram_origin'")
    vector_origin = vector_bytes = None
    if ("vector_origin" in data) != ("vector_bytes" in data):
        raise UserError(f"{source}: give vector_origin and vector_bytes together (or neither)")
    if "vector_origin" in data:
        vector_origin = _address(data["vector_origin"], f"{source}: field 'vector_origin'")
        vector_bytes = parse_bytes(data["vector_bytes"], f"{source}: field 'vector_bytes'")
    regions = [("flash", flash_origin, flash), ("ram", ram_origin, ram)]
    if ext_origin is not None:
        regions.append(("external", ext_origin, ext_bytes))
    if vector_origin is not None:
        regions.append(("vectors", vector_origin, vector_bytes))
    for label, start, size in regions:
        if start + size > 2 ** 32:
            raise UserError(f"{source}: {label} ({size} B at {start:#x}) runs past the 4 GiB address space")
    for i, (a, a0, an) in enumerate(regions):
        for b, b0, bn in regions[i + 1:]:
            if a0 < b0 + bn and b0 < a0 + an:
                raise UserError(f"{source}: {a} ({an} B at {a0:#x}) overlaps {b} ({bn} B at {b0:#x})")
    description = data.get("description")
    description = _text(description, f"{source}: field 'description'") if description is not None else (
        f"custom board from {source}: {core}, {flash} B flash at {flash_origin:#x}, {ram} B RAM at {ram_origin:#x}")
    return Board(name=name, core=core, cpu_flags=tuple(flags), fpu=fpu is not None,
                 fpu_double=fpu == "double", float_abi="hard" if fpu else "soft", flash_bytes=flash,
                 ram_bytes=ram, qemu_machine=qemu, description=description, flash_origin=flash_origin,
                 ram_origin=ram_origin, clock_hz=clock, ext_origin=ext_origin, ext_bytes=ext_bytes,
                 vector_origin=vector_origin, vector_bytes=vector_bytes,
                 kernels=DSP_KERNELS if dsp else ("portable",))


def resolve_board(board: "str | Board | None", board_file: "str | os.PathLike | None") -> Board:
    """`--board NAME` and `--board-file FILE` -> the Board (the file's, when given; a --board
    beside it must name the same board)."""
    if board_file is None:
        return get_board(board if board is not None else "host")
    custom = load_board_file(board_file)
    if board is not None and not isinstance(board, Board) and board.strip().lower() != custom.name:
        raise UserError(f"--board {board} and --board-file {board_file} (board '{custom.name}') disagree; "
                        "give one of them")
    return custom
