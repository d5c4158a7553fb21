"""Flash and RAM bytes of a linked board ELF, from `arm-none-eabi-size -A`.

Accounting (the numbers that go into report.json as flash_bytes / ram_bytes):
  flash_bytes = every allocated section that lives in flash: .isr_vector, .text, .rodata
                (weights), .ARM.extab, .ARM.exidx, .init_array/.fini_array, ...
                PLUS the initial image of .data (copied to RAM at reset).
  ram_bytes   = .data + .bss (the activation arena is a static array, so it is in .bss)
                + any other .data*/.bss*/.noinit* section.
                The .heap and .stack sections are *reservations* made by board.ld, not
                program data: they are left out and reported separately as
                heap_reserved_bytes / stack_reserved_bytes.
Non-allocated sections (.debug_*, .comment, .ARM.attributes, symbol tables) count for
neither.  Sections are classified by name; board.ld names them as above.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from onnx2mcu.errors import UserError

_NON_ALLOC_PREFIXES = (".debug", ".comment", ".ARM.attributes", ".stab", ".line", ".gnu.attributes",
                       ".symtab", ".strtab", ".shstrtab", ".note.GNU-stack", ".gnu_debuglink")
_RAM_ONLY_PREFIXES = (".bss", ".noinit", ".tbss", "COMMON")
_RAM_AND_FLASH_PREFIXES = (".data", ".tdata", ".ramfunc")
_STACK_NAMES = (".stack", "._stack", ".stack_dummy")
_HEAP_NAMES = (".heap", "._heap", "._user_heap_stack")


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    """`name` is one of `prefixes` or a subsection of one (".bss.arena" matches ".bss")."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _non_alloc(name: str) -> bool:
    return name.startswith(".debug") or _matches(name, _NON_ALLOC_PREFIXES)


def parse_size_output(text: str) -> dict[str, dict[str, int]]:
    """{section: {"size": bytes, "addr": address}} from `size -A` output."""
    sections: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[0] in {"section", "Total"}:
            continue
        try:
            size, addr = int(parts[1], 0), int(parts[2], 0)
        except ValueError:
            continue
        name = parts[0]
        if name in sections:  # duplicate names: add up
            sections[name]["size"] += size
        else:
            sections[name] = {"size": size, "addr": addr}
    return sections


def classify_sections(sections: dict[str, dict[str, int]]) -> dict:
    flash = ram = stack = heap = 0
    for name, info in sections.items():
        size = info["size"]
        if _non_alloc(name):
            continue
        if name in _STACK_NAMES:
            stack += size
        elif name in _HEAP_NAMES:
            heap += size
        elif _matches(name, _RAM_ONLY_PREFIXES):
            ram += size
        elif _matches(name, _RAM_AND_FLASH_PREFIXES):
            ram += size
            flash += size
        else:
            flash += size
    return {
        "flash_bytes": flash,
        "ram_bytes": ram,
        "stack_reserved_bytes": stack,
        "heap_reserved_bytes": heap,
        "sections": {name: info["size"] for name, info in sections.items() if not _non_alloc(name)},
    }


def elf_sizes(elf_path: "str | os.PathLike", size_tool: str = "arm-none-eabi-size") -> dict:
    """{"flash_bytes", "ram_bytes", "stack_reserved_bytes", "heap_reserved_bytes", "sections": {name: bytes}}.

    `sections` lists the allocated sections only (no .debug_*, .comment, ...)."""
    elf_path = os.fspath(elf_path)
    if not os.path.exists(elf_path):
        raise UserError(f"{elf_path}: no such ELF file; build the project first (make)")
    if shutil.which(size_tool) is None:
        raise UserError(f"'{size_tool}' not found: install gcc-arm-none-eabi (binutils-arm-none-eabi)")
    proc = subprocess.run([size_tool, "-A", "-d", elf_path], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"{size_tool} -A {elf_path} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return classify_sections(parse_size_output(proc.stdout))
