"""Board registry: what a target is (core, compiler flags, memory map, emulator).

A `Board` is pure data; codegen/board_project.py turns it into a startup file,
a linker script and a Makefile, and simulator/run_c.py builds and runs it.

Memory figures are the *usable contiguous* region the linker script gets:
    flash_origin/flash_bytes  -> MEMORY FLASH (rx): vectors, code, rodata, weights, .data image
    ram_origin/ram_bytes      -> MEMORY RAM  (rwx): .data, .bss (the arena), heap reservation, stack
The `host` pseudo-target has no memory map (None) and is built with the
host's gcc.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from onnx2mcu.errors import UserError

KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True)
class Board:
    name: str
    core: str  # "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55" or "host"
    cpu_flags: tuple[str, ...]  # gcc flags selecting core, instruction set and float ABI
    fpu: bool  # has a hardware FPU that the code uses (CPACR is enabled at reset)
    float_abi: str  # "hard" | "soft" | "host"
    flash_bytes: int | None
    ram_bytes: int | None
    qemu_machine: str | None  # `qemu-system-arm -M` name when the board is emulated
    description: str
    flash_origin: int | None = None
    ram_origin: int | None = None
    clock_hz: int | None = None  # nominal core clock, for turning instruction counts into rough times
    fpu_double: bool = False  # the FPU also does float64 in hardware (fpv5-d16)
    notes: tuple[str, ...] = field(default_factory=tuple)
    # memory-mapped read-only memory beside the internal flash (QSPI flash, PSRAM) that
    # takes the largest weight tables when the internal flash cannot hold them all
    ext_origin: int | None = None
    ext_bytes: int | None = None
    # kernel backends codegen may use on this core, best first (codegen/kernels.py picks, per
    # node, the first that has an applicable kernel; "portable" is plain C99 and always last)
    kernels: tuple[str, ...] = ("portable",)
    # where the core fetches its reset vector table when that is not the flash's origin (the
    # linker script then puts .isr_vector alone in a BOOT region there)
    vector_origin: int | None = None
    vector_bytes: int | None = None

    @property
    def is_host(self) -> bool:
        return self.core == "host"

    @property
    def emulated(self) -> bool:
        return self.qemu_machine is not None

    def summary(self) -> dict:
        """JSON-friendly description (for report.json and `onnx2mcu boards`)."""
        return {
            "name": self.name,
            "core": self.core,
            "cpu_flags": list(self.cpu_flags),
            "fpu": self.fpu,
            "float_abi": self.float_abi,
            "flash_bytes": self.flash_bytes,
            "ram_bytes": self.ram_bytes,
            "flash_origin": None if self.flash_origin is None else hex(self.flash_origin),
            "ram_origin": None if self.ram_origin is None else hex(self.ram_origin),
            "qemu_machine": self.qemu_machine,
            "ext_bytes": self.ext_bytes,
            "ext_origin": None if self.ext_origin is None else hex(self.ext_origin),
            "clock_hz": self.clock_hz,
            "description": self.description,
        }


_M4F = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")
_M7_DP = ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16")
_M7_SP = ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16")
_M0P = ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft")
_M3 = ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft")
_M33F = ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16")
_M55 = ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard")  # FPv5 double + MVE (the default FPU)
# Cortex-M4/M7/M33/M55 have the DSP extension (SIMD multiply-accumulate); M0+/M3 and the host do not
_DSP_KERNELS = ("arm-dsp", "portable")
DSP_KERNELS = _DSP_KERNELS

_BOARDS: tuple[Board, ...] = (
    Board(
        name="mps2-an386",
        core="cortex-m4",
        kernels=_DSP_KERNELS,
        cpu_flags=_M4F,
        fpu=True,
        float_abi="hard",
        flash_bytes=4 * MIB,
        ram_bytes=4 * MIB,
        flash_origin=0x0000_0000,
        ram_origin=0x2000_0000,
        qemu_machine="mps2-an386",
        ext_origin=0x2100_0000,
        ext_bytes=16 * MIB,  # "PSRAM" (mps.ram, 16 MiB at 0x21000000) in QEMU's memory map
        clock_hz=25_000_000,
        description=(
            "Arm MPS2 FPGA image AN386 (Cortex-M4F), emulated by QEMU. Flash = ZBT SSRAM1, 4 MiB at 0x0; "
            "RAM = ZBT SSRAM2&3, 4 MiB at 0x20000000; weights that do not fit the flash go to the 16 MiB "
            "PSRAM (QEMU `info mtree`)."
        ),
    ),
    Board(
        name="mps2-an500",
        core="cortex-m7",
        kernels=_DSP_KERNELS,
        cpu_flags=_M7_DP,
        fpu=True,
        fpu_double=True,
        float_abi="hard",
        flash_bytes=4 * MIB,
        ram_bytes=4 * MIB,
        flash_origin=0x0000_0000,
        ram_origin=0x2000_0000,
        qemu_machine="mps2-an500",
        ext_origin=0x6000_0000,
        ext_bytes=16 * MIB,  # "PSRAM" (mps.ram, 16 MiB at 0x60000000) in QEMU's memory map
        clock_hz=25_000_000,
        description=(
            "Arm MPS2 FPGA image AN500 (Cortex-M7, FPv5-D16), emulated by QEMU. Flash = ZBT SSRAM1, 4 MiB at 0x0; "
            "RAM = ZBT SSRAM2&3, 4 MiB at 0x20000000; weights that do not fit the flash go to the 16 MiB "
            "PSRAM (QEMU `info mtree`)."
        ),
    ),
    Board(
        name="mps2-an385",
        core="cortex-m3",
        cpu_flags=_M3,
        fpu=False,
        float_abi="soft",
        flash_bytes=4 * MIB,
        ram_bytes=4 * MIB,
        flash_origin=0x0000_0000,
        ram_origin=0x2000_0000,
        qemu_machine="mps2-an385",
        ext_origin=0x2100_0000,
        ext_bytes=16 * MIB,  # "PSRAM" (mps.ram, 16 MiB at 0x21000000) in QEMU's memory map
        clock_hz=25_000_000,
        description=(
            "Arm MPS2 FPGA image AN385 (Cortex-M3, no FPU: soft float), emulated by QEMU; the stand-in of "
            "Cortex-M0+/M3 boards for `check`. Flash = ZBT SSRAM1, 4 MiB at 0x0; RAM = ZBT SSRAM2&3, 4 MiB at "
            "0x20000000; weights that do not fit the flash go to the 16 MiB PSRAM at 0x21000000 (QEMU `info mtree`)."
        ),
    ),
    Board(
        name="mps2-an505",
        core="cortex-m33",
        kernels=_DSP_KERNELS,
        cpu_flags=_M33F,
        fpu=True,
        float_abi="hard",
        flash_bytes=4 * MIB,
        ram_bytes=4 * MIB,
        flash_origin=0x1000_0000,
        ram_origin=0x3800_0000,
        qemu_machine="mps2-an505",
        ext_origin=0x8000_0000,
        ext_bytes=16 * MIB,  # "PSRAM" (mps.ram, 16 MiB at 0x80000000) in QEMU's memory map
        clock_hz=20_000_000,
        description=(
            "Arm MPS2 FPGA image AN505 (Cortex-M33 with FPv5-SP and DSP, TrustZone), emulated by QEMU. The core "
            "resets in the Secure state with the vector table at 0x10000000 (init-svtor), so the project links "
            "to the Secure aliases: flash = ZBT SSRAM1, 4 MiB at 0x10000000; RAM = ZBT SSRAM2&3, 4 MiB at "
            "0x38000000; weights that do not fit the flash go to the 16 MiB PSRAM at 0x80000000 (QEMU `info mtree`)."
        ),
    ),
    Board(
        name="mps3-an547",
        core="cortex-m55",
        kernels=_DSP_KERNELS,
        cpu_flags=_M55,
        fpu=True,
        fpu_double=True,
        float_abi="hard",
        flash_bytes=2 * MIB,
        ram_bytes=4 * MIB,
        flash_origin=0x0100_0000,
        ram_origin=0x2100_0000,
        vector_origin=0x0000_0000,
        vector_bytes=512 * KIB,
        qemu_machine="mps3-an547",
        ext_origin=0x2800_0000,
        ext_bytes=8 * MIB,  # the QSPI flash (8 MiB at 0x28000000, a ROM in QEMU)
        clock_hz=32_000_000,
        description=(
            "Arm MPS3 FPGA image AN547 (Cortex-M55 with FPv5-D16, MVE and DSP; SSE-300), emulated by QEMU. The "
            "reset vector table sits alone in the ITCM at 0x0 (init-svtor); flash = the 2 MiB SRAM at 0x01000000; "
            "RAM = the 4 MiB SRAM at 0x21000000; weights that do not fit the flash go to the 8 MiB QSPI flash at "
            "0x28000000 (QEMU `info mtree`). MVE (Helium) is enabled but no kernel uses it yet."
        ),
    ),
    Board(
        name="nucleo-f746zg",
        core="cortex-m7",
        kernels=_DSP_KERNELS,
        cpu_flags=_M7_SP,
        fpu=True,
        float_abi="hard",
        flash_bytes=1 * MIB,
        ram_bytes=320 * KIB,
        flash_origin=0x0800_0000,
        ram_origin=0x2000_0000,
        qemu_machine=None,
        clock_hz=216_000_000,
        description=(
            "ST NUCLEO-F746ZG: STM32F746ZG, Cortex-M7 with single-precision FPv5 at 216 MHz; 1 MiB flash at "
            "0x08000000; 320 KiB SRAM at 0x20000000 (DTCM 64K + SRAM1 240K + SRAM2 16K, contiguous)."
        ),
    ),
    Board(
        name="nucleo-f767zi",
        core="cortex-m7",
        kernels=_DSP_KERNELS,
        cpu_flags=_M7_DP,
        fpu=True,
        fpu_double=True,
        float_abi="hard",
        flash_bytes=2 * MIB,
        ram_bytes=512 * KIB,
        flash_origin=0x0800_0000,
        ram_origin=0x2000_0000,
        qemu_machine=None,
        clock_hz=216_000_000,
        description=(
            "ST NUCLEO-F767ZI: STM32F767ZI, Cortex-M7 with double-precision FPv5 at 216 MHz; 2 MiB flash at "
            "0x08000000; 512 KiB SRAM at 0x20000000 (DTCM 128K + SRAM1 368K + SRAM2 16K, contiguous)."
        ),
    ),
    Board(
        name="nucleo-h743zi",
        core="cortex-m7",
        kernels=_DSP_KERNELS,
        cpu_flags=_M7_DP,
        fpu=True,
        fpu_double=True,
        float_abi="hard",
        flash_bytes=2 * MIB,
        ram_bytes=512 * KIB,
        flash_origin=0x0800_0000,
        ram_origin=0x2400_0000,
        qemu_machine=None,
        clock_hz=480_000_000,
        description=(
            "ST NUCLEO-H743ZI: STM32H743ZI, Cortex-M7 with double-precision FPv5 at up to 480 MHz; 2 MiB flash "
            "at 0x08000000. RAM = the 512 KiB AXI SRAM at 0x24000000 (the largest contiguous block, on by "
            "default after reset); the 128 KiB DTCM at 0x20000000 and the D2/D3 SRAMs are not used."
        ),
        notes=("The DTCM (128 KiB at 0x20000000) is faster but smaller; a future multi-region planner could "
               "place the stack and hot tensors there.",),
    ),
    Board(
        name="nrf52840dk",
        core="cortex-m4",
        kernels=_DSP_KERNELS,
        cpu_flags=_M4F,
        fpu=True,
        float_abi="hard",
        flash_bytes=1 * MIB,
        ram_bytes=256 * KIB,
        flash_origin=0x0000_0000,
        ram_origin=0x2000_0000,
        qemu_machine=None,
        clock_hz=64_000_000,
        description=(
            "Nordic nRF52840 DK: nRF52840, Cortex-M4F at 64 MHz; 1 MiB flash at 0x0; 256 KiB RAM at 0x20000000 "
            "(no SoftDevice: the whole flash and RAM are the application's)."
        ),
    ),
    Board(
        name="rp2040",
        core="cortex-m0plus",
        cpu_flags=_M0P,
        fpu=False,
        float_abi="soft",
        flash_bytes=2 * MIB,
        ram_bytes=264 * KIB,
        flash_origin=0x1000_0000,
        ram_origin=0x2000_0000,
        qemu_machine=None,
        clock_hz=133_000_000,
        description=(
            "Raspberry Pi RP2040 (e.g. Pico): dual Cortex-M0+ (one used) at 133 MHz, no FPU (soft float); 2 MiB "
            "external QSPI flash, execute-in-place at 0x10000000; 264 KiB SRAM at 0x20000000. The second-stage "
            "bootloader (boot2, the first 256 bytes of flash) is NOT provided: the image links and sizes are "
            "exact, but to boot it on hardware prepend a boot2 (e.g. from the Pico SDK) or load it with a debugger."
        ),
    ),
    Board(
        name="host",
        core="host",
        cpu_flags=(),
        fpu=True,
        float_abi="host",
        flash_bytes=None,
        ram_bytes=None,
        qemu_machine=None,
        description="The machine running onnx2mcu: plain gcc, no memory limits; for checking generated C quickly.",
    ),
)

BOARDS: dict[str, Board] = {b.name: b for b in _BOARDS}

# chip and product names -> the registry's board with that chip (keys normalised as get_board
# does: lower case, '-' for '_'); a name here must not also be a board's name
ALIASES: dict[str, str] = {
    "stm32f746zg": "nucleo-f746zg", "stm32f746": "nucleo-f746zg", "nucleo-f746": "nucleo-f746zg",
    "stm32f767zi": "nucleo-f767zi", "stm32f767": "nucleo-f767zi", "nucleo-f767": "nucleo-f767zi",
    "stm32h743zi": "nucleo-h743zi", "stm32h743": "nucleo-h743zi", "nucleo-h743": "nucleo-h743zi",
    "nrf52840": "nrf52840dk", "nrf52840-dk": "nrf52840dk", "pca10056": "nrf52840dk",
    "pico": "rp2040", "raspberry-pi-pico": "rp2040", "rpi-pico": "rp2040",
    "an385": "mps2-an385", "an386": "mps2-an386", "an500": "mps2-an500", "an505": "mps2-an505",
    "an547": "mps3-an547",
}


def board_names() -> list[str]:
    return list(BOARDS)


def _key(name: str) -> str:
    return str(name).strip().lower().replace("_", "-").replace(" ", "-")


def get_board(name: "str | Board") -> Board:
    """The board called `name` (case-insensitive, '_' accepted for '-'), or the board of a chip
    name in ALIASES; a UserError otherwise, with the nearest name ("did you mean ...?") when one
    is close (difflib) and the valid names."""
    if isinstance(name, Board):
        return name
    key = _key(name)
    if key in BOARDS:
        return BOARDS[key]
    if key in ALIASES:
        return BOARDS[ALIASES[key]]
    import difflib

    near = difflib.get_close_matches(key, [*BOARDS, *ALIASES], n=1, cutoff=0.6)
    hint = f" (did you mean {ALIASES.get(near[0], near[0])}?)" if near else ""
    raise UserError(f"unknown board '{name}'{hint}; valid boards: {', '.join(BOARDS)} (chip names such as "
                    "STM32F746ZG, nRF52840 and RP2040 work too; --board-file FILE.toml adds your own)")


def board_of_summary(summary: dict) -> Board:
    """The board a project's report.json names: the registry's, or (a custom board from
    --board-file) rebuilt from the report's summary, with what building and running need."""
    name = summary["name"]
    if _key(name) in BOARDS:
        return BOARDS[_key(name)]

    def origin(value):
        return None if value is None else int(value, 16) if isinstance(value, str) else int(value)

    return Board(name=name, core=summary["core"], cpu_flags=tuple(summary["cpu_flags"]), fpu=summary["fpu"],
                 float_abi=summary["float_abi"], flash_bytes=summary["flash_bytes"],
                 ram_bytes=summary["ram_bytes"], qemu_machine=summary.get("qemu_machine"),
                 description=summary.get("description", ""), flash_origin=origin(summary.get("flash_origin")),
                 ram_origin=origin(summary.get("ram_origin")), clock_hz=summary.get("clock_hz"),
                 ext_origin=origin(summary.get("ext_origin")), ext_bytes=summary.get("ext_bytes"))
