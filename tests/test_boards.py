"""Board registry, board projects (startup, linker script, Makefile), host/QEMU runs and read-back."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from onnx2mcu.codegen.board_project import write_board_files
from onnx2mcu.errors import UserError
from onnx2mcu.simulator.elf import elf_sizes, parse_size_output
from onnx2mcu.simulator.run_c import (
    FAULT_EXIT_CODE,
    build,
    parse_outputs,
    run_host,
    run_qemu,
)
from onnx2mcu.targets import BOARDS, get_board

HAVE_ARM = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("arm-none-eabi-size") is not None
HAVE_QEMU = shutil.which("qemu-system-arm") is not None
HAVE_HOST_CC = shutil.which("gcc") is not None and shutil.which("make") is not None

needs_arm = pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")
needs_qemu = pytest.mark.skipif(not (HAVE_ARM and HAVE_QEMU), reason="arm-none-eabi-gcc or qemu-system-arm not installed")
needs_host_cc = pytest.mark.skipif(not HAVE_HOST_CC, reason="gcc/make not installed")

# A tiny program using the read-back protocol: square roots and plain arithmetic are
# exact in IEEE float32 (so must match numpy bit for bit), expf may differ by an ulp
# between libms, integers exercise the other dtypes.
PROGRAM = r"""
#include <math.h>
#include <stdint.h>
#include "o2m_io.h"

static const float w[8] = {0.5f, -1.25f, 2.0f, 0.125f, -0.75f, 3.5f, 1.0f, -2.0f};
static float sq[8];
static float ex[8];
static float dot[1];
static int32_t ints[5];
static int8_t small[4];
#ifdef O2M_TEST_PAD
static volatile uint8_t pad[O2M_TEST_PAD];
#endif

int main(void)
{
    volatile float base = 0.5f;
    float acc = 0.0f;
    int i;
    o2m_mark_begin();
    for (i = 0; i < 8; ++i) {
        float x = base + (float)i;
        sq[i] = sqrtf(x);
        ex[i] = expf(base * (float)i - 2.0f);
        acc = acc + w[i] * x;
    }
    dot[0] = acc;
    o2m_mark_end();
    for (i = 0; i < 5; ++i) {
        ints[i] = (i - 2) * 1000003;
    }
    for (i = 0; i < 4; ++i) {
        small[i] = (int8_t)(i * 50 - 100);
    }
#ifdef O2M_TEST_PAD
    pad[(unsigned)base] = 1u;
#endif
    o2m_out_f32("sqrt", sq, 8);
    o2m_out_f32("exp", ex, 8);
    o2m_out_f32("dot", dot, 1);
    o2m_out_s32("ints", ints, 5);
    o2m_out_s8("small", small, 4);
    o2m_done();
    return 0;
}
"""

FAULT_PROGRAM = r"""
#include <stdio.h>
#include <stdint.h>
int main(void)
{
    volatile uint32_t *bad = (volatile uint32_t *)0xFFFFFFF0u;
    puts("before the fault");
    *bad = 1u;
    puts("after the fault");
    return 0;
}
"""

EXIT7_PROGRAM = r"""
int main(void)
{
    return 7;
}
"""


def big_array_program(nbytes: int, const: bool = False) -> str:
    qual = "const " if const else ""
    init = " = {1}" if const else ""
    return f"""
#include <stdint.h>
static {qual}volatile uint8_t big[{nbytes}u]{init};
int main(void)
{{
    return (int)big[{nbytes // 2}u];
}}
"""


def expected() -> dict[str, np.ndarray]:
    base = np.float32(0.5)
    x = base + np.arange(8, dtype=np.float32)
    w = np.array([0.5, -1.25, 2.0, 0.125, -0.75, 3.5, 1.0, -2.0], dtype=np.float32)
    acc = np.float32(0.0)
    for k in range(8):  # the C loop's order, one rounding per operation
        acc = np.float32(acc + np.float32(w[k] * x[k]))
    return {
        "sqrt": np.sqrt(x),
        "exp": np.exp(base * np.arange(8, dtype=np.float32) - np.float32(2.0)),
        "dot": np.array([acc], dtype=np.float32),
        "ints": (np.arange(5, dtype=np.int32) - 2) * 1000003,
        "small": (np.arange(4) * 50 - 100).astype(np.int8),
    }


def make_project(root: Path, board: str, program: str, **kwargs) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.c").write_text(program)
    write_board_files(board, root, ["main.c"], **kwargs)
    return root


def bits(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def check_outputs(out: dict[str, np.ndarray]) -> None:
    exp = expected()
    assert list(out) == ["sqrt", "exp", "dot", "ints", "small"]
    for name in ("sqrt", "dot"):
        assert out[name].dtype == np.float32
        np.testing.assert_array_equal(bits(out[name]), bits(exp[name]), err_msg=name)
    # expf: libms may round differently in the last place
    ulps = np.abs(bits(out["exp"]).astype(np.int64) - bits(exp["exp"]).astype(np.int64))
    assert ulps.max() <= 1, ulps
    assert out["ints"].dtype == np.int32 and np.array_equal(out["ints"], exp["ints"])
    assert out["small"].dtype == np.int8 and np.array_equal(out["small"], exp["small"])


# ----- registry -------------------------------------------------------------------
def test_registry_contents():
    required = {"mps2-an386", "mps2-an500", "nucleo-f746zg", "nucleo-f767zi", "nucleo-h743zi",
                "nrf52840dk", "rp2040", "host"}
    assert required <= set(BOARDS)
    for b in BOARDS.values():
        assert b.description
        if b.is_host:
            assert b.flash_bytes is None and b.ram_bytes is None and b.qemu_machine is None
            continue
        assert any(f.startswith("-mcpu=") for f in b.cpu_flags) and "-mthumb" in b.cpu_flags
        assert b.flash_bytes > 0 and b.ram_bytes > 0
        assert b.flash_origin is not None and b.ram_origin is not None
        assert (f"-mfloat-abi={'hard' if b.fpu else 'soft'}") in b.cpu_flags
    f746 = get_board("nucleo-f746zg")
    assert (f746.flash_bytes, f746.ram_bytes, f746.flash_origin, f746.ram_origin) == (1 << 20, 320 << 10, 0x08000000, 0x20000000)
    f767 = get_board("nucleo-f767zi")
    assert (f767.flash_bytes, f767.ram_bytes) == (2 << 20, 512 << 10)
    h7 = get_board("nucleo-h743zi")
    assert h7.flash_bytes == 2 << 20 and (h7.ram_origin, h7.ram_bytes) == (0x24000000, 512 << 10)
    nrf = get_board("nrf52840dk")
    assert (nrf.flash_bytes, nrf.ram_bytes, nrf.flash_origin, nrf.core) == (1 << 20, 256 << 10, 0, "cortex-m4")
    rp = get_board("rp2040")
    assert not rp.fpu and "-mcpu=cortex-m0plus" in rp.cpu_flags and "-mfloat-abi=soft" in rp.cpu_flags
    assert (rp.flash_origin, rp.flash_bytes, rp.ram_bytes) == (0x10000000, 2 << 20, 264 << 10)
    assert "boot2" in rp.description
    an386, an500 = get_board("mps2-an386"), get_board("mps2-an500")
    assert an386.qemu_machine == "mps2-an386" and an386.core == "cortex-m4" and an386.fpu
    assert an500.qemu_machine == "mps2-an500" and "-mfpu=fpv5-d16" in an500.cpu_flags
    for b in (an386, an500):
        assert (b.flash_origin, b.flash_bytes, b.ram_origin, b.ram_bytes) == (0, 4 << 20, 0x20000000, 4 << 20)
    assert get_board("NUCLEO_F746ZG") is f746
    # the QEMU stand-ins of the other core families (memory maps from QEMU's `info mtree`)
    an385, an505, an547 = get_board("mps2-an385"), get_board("mps2-an505"), get_board("mps3-an547")
    assert (an385.core, an385.fpu, an385.flash_origin, an385.ram_origin) == ("cortex-m3", False, 0, 0x20000000)
    assert (an505.core, an505.flash_origin, an505.ram_origin, an505.ext_origin) == (
        "cortex-m33", 0x10000000, 0x38000000, 0x80000000)
    assert (an547.core, an547.vector_origin, an547.flash_origin, an547.ram_origin, an547.ext_origin) == (
        "cortex-m55", 0, 0x01000000, 0x21000000, 0x28000000)
    assert an505.kernels[0] == an547.kernels[0] == "arm-dsp" and an385.kernels == ("portable",)


def test_unknown_board_lists_names():
    with pytest.raises(UserError) as err:
        get_board("arduino-uno")
    assert "arduino-uno" in str(err.value)
    for name in BOARDS:
        assert name in str(err.value)


def test_board_files_written(tmp_path):
    written = write_board_files("nucleo-h743zi", tmp_path, ["main.c"], stack_bytes=4000)
    names = {p.name for p in written}
    assert {"startup.c", "board.ld", "Makefile", "o2m_io.c", "o2m_io.h"} <= names
    ld = (tmp_path / "board.ld").read_text()
    assert "ORIGIN = 0x08000000" in ld and "ORIGIN = 0x24000000" in ld
    assert "0x80000" in ld and "STACK_SIZE : 0xFA0" in ld  # 512 KiB RAM; 4000 is already 8-aligned
    assert "ASSERT" in ld and "RAM overflow" in ld and "FLASH overflow" in ld
    mk = (tmp_path / "Makefile").read_text()
    for flag in ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "--specs=nano.specs", "--specs=rdimon.specs",
                 "-nostartfiles", "-ffp-contract=off", "-Werror", "-pedantic", "--gc-sections"):
        assert flag in mk
    host = write_board_files("host", tmp_path / "h", ["main.c"])
    assert {p.name for p in host} == {"Makefile", "o2m_io.c", "o2m_io.h"}
    with pytest.raises(UserError):
        write_board_files("rp2040", tmp_path / "x", ["startup.c"])


# ----- read-back protocol ------------------------------------------------------------
def test_parse_outputs_roundtrip():
    x = np.array([1.0, -0.0, np.inf, np.nan, 1e-45, 3.4e38, -2.5, 0.1], dtype=np.float32)
    words = [f"{w:08x}" for w in x.view(np.uint32)]
    text = "\n".join([
        "hello from the program",
        "OUT x 8 f32", " ".join(words[:5]), " ".join(words[5:]),
        "OUT ids 3 s32", "ffffffff 00000000 7fffffff",
        "OUT q 2 s8", "ffffff80 0000007f",
        "OUT flag 2 b8", "00000000 00000001",
        "OUT big 1 s64", "8000000000000000",
        "OUT legacy 1", "3f800000",
        "DONE", "trailing noise",
    ])
    out = parse_outputs(text)
    np.testing.assert_array_equal(out["x"].view(np.uint32), x.view(np.uint32))
    assert out["ids"].tolist() == [-1, 0, 2**31 - 1]
    assert out["q"].dtype == np.int8 and out["q"].tolist() == [-128, 127]
    assert out["flag"].tolist() == [False, True]
    assert out["big"].tolist() == [-(2**63)]
    assert out["legacy"].dtype == np.float32 and out["legacy"][0] == 1.0


@pytest.mark.parametrize("text", [
    "OUT x 2 f32\n3f800000\n",            # truncated, no DONE
    "OUT x 2 f32\n3f800000\nDONE\n",      # DONE inside a block
    "OUT x 1 f32\n3f80000\nDONE\n",       # 7 digits
    "OUT x 1 f32\nzzzzzzzz\nDONE\n",      # not hex
    "OUT x 1 f99\n3f800000\nDONE\n",      # unknown dtype
    "OUT x 1 f32\n3f800000\n",            # no DONE
    "OUT x 1 i8\n00000100\nDONE\n",       # out of range for i8
])
def test_parse_outputs_rejects(text):
    with pytest.raises(UserError):
        parse_outputs(text)


# ----- QEMU ------------------------------------------------------------------------
# every emulated board of the registry boots the harness (startup, linker script, semihosting)
QEMU_BOARDS = ["mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547"]


def test_every_emulated_board_is_tested():
    assert sorted(b.name for b in BOARDS.values() if b.emulated) == sorted(QEMU_BOARDS)


@pytest.fixture(scope="module")
def qemu_projects(tmp_path_factory):
    if not (HAVE_ARM and HAVE_QEMU):
        pytest.skip("arm-none-eabi-gcc or qemu-system-arm not installed")
    root = tmp_path_factory.mktemp("qemu")
    projects = {}
    for board in QEMU_BOARDS:
        proj = make_project(root / board, board, PROGRAM)
        build(proj, board)
        projects[board] = proj
    return projects


@needs_qemu
@pytest.mark.parametrize("board", QEMU_BOARDS)
def test_qemu_run_exact_and_repeatable(qemu_projects, board):
    proj = qemu_projects[board]
    first = run_qemu(proj, board, timeout=30)
    assert first.exit_code == 0, first.stderr
    check_outputs(parse_outputs(first.stdout))
    assert first.instructions is not None and first.instructions > 1000
    assert first.regions == 1 and 0 < first.region_instructions < first.instructions
    second = run_qemu(proj, board, timeout=30)
    assert second.stdout == first.stdout
    assert (second.instructions, second.region_instructions) == (first.instructions, first.region_instructions)
    quick = run_qemu(proj, board, count_instructions=False, timeout=30)
    assert quick.instructions is None and quick.stdout == first.stdout


@needs_qemu
def test_qemu_fault_exits_quickly(tmp_path):
    proj = make_project(tmp_path / "fault", "mps2-an386", FAULT_PROGRAM)
    build(proj, "mps2-an386")
    res = run_qemu(proj, "mps2-an386", timeout=20)
    assert res.exit_code == FAULT_EXIT_CODE and res.faulted
    assert "before the fault" in res.stdout and "after the fault" not in res.stdout
    assert "pc=0x" in res.stderr and "cfsr=" in res.stderr
    assert res.seconds < 10
    with pytest.raises(UserError):
        parse_outputs(res.stdout)


@needs_qemu
def test_qemu_exit_code_is_mains_return(tmp_path):
    proj = make_project(tmp_path / "exit7", "mps2-an500", EXIT7_PROGRAM)
    build(proj, "mps2-an500")
    res = run_qemu(proj, "mps2-an500", count_instructions=False, timeout=20)
    assert res.exit_code == 7, res.stderr


def test_run_qemu_needs_an_emulated_board(tmp_path):
    with pytest.raises(UserError, match="no QEMU model"):
        run_qemu(tmp_path, "nucleo-f746zg")


# ----- link-time budgets -------------------------------------------------------------
@needs_arm
def test_ram_overflow_fails_at_link(tmp_path):
    proj = make_project(tmp_path / "ram", "nucleo-f746zg", big_array_program(400 * 1024))
    with pytest.raises(UserError) as err:
        build(proj, "nucleo-f746zg")
    msg = str(err.value)
    assert "RAM overflow" in msg and "nucleo-f746zg" in msg
    assert msg.index("RAM overflow") < msg.index("region")  # our ASSERT message leads
    assert not (proj / "app.elf").exists()


@needs_arm
def test_flash_overflow_and_defsym_override(tmp_path):
    proj = make_project(tmp_path / "flash", "nucleo-f746zg", big_array_program(1536 * 1024, const=True))
    with pytest.raises(UserError, match="FLASH overflow"):
        build(proj, "nucleo-f746zg")
    # 100 KiB of .bss fits the board's 320 KiB, but not a RAM_SIZE overridden to 64 KiB
    proj = make_project(tmp_path / "defsym", "nucleo-f746zg", big_array_program(100 * 1024))
    build(proj, "nucleo-f746zg")
    with pytest.raises(UserError, match="RAM overflow"):
        build(proj, "nucleo-f746zg", make_vars={"RAM_SIZE": "0x10000"})


@needs_arm
@pytest.mark.parametrize("board", ["nucleo-f746zg", "nucleo-f767zi", "nucleo-h743zi", "nrf52840dk", "rp2040"])
def test_hardware_boards_link(tmp_path, board):
    proj = make_project(tmp_path / board, board, PROGRAM)
    elf = build(proj, board)
    b = get_board(board)
    import subprocess

    sections = parse_size_output(subprocess.run(["arm-none-eabi-size", "-A", "-d", str(elf)],
                                                capture_output=True, text=True, check=True).stdout)
    assert sections[".isr_vector"]["addr"] == b.flash_origin
    assert sections[".data"]["addr"] == b.ram_origin
    sizes = elf_sizes(elf)
    assert 0 < sizes["flash_bytes"] < b.flash_bytes and 0 < sizes["ram_bytes"] < b.ram_bytes


@needs_arm
def test_elf_sizes_accounting(tmp_path):
    pad = 64 * 1024
    small = build(make_project(tmp_path / "a", "mps2-an386", PROGRAM, stack_bytes=6000), "mps2-an386")
    padded = build(make_project(tmp_path / "b", "mps2-an386", PROGRAM, stack_bytes=6000,
                                extra_cflags=[f"-DO2M_TEST_PAD={pad}"]), "mps2-an386")
    s, p = elf_sizes(small), elf_sizes(padded)
    assert s["stack_reserved_bytes"] == 6000 and s["heap_reserved_bytes"] > 0
    assert ".debug_info" not in s["sections"] and ".stack" in s["sections"]
    sec = s["sections"]
    assert s["ram_bytes"] == sec[".data"] + sec[".bss"]
    assert s["flash_bytes"] == sum(v for k, v in sec.items() if k not in {".bss", ".heap", ".stack"})
    assert p["ram_bytes"] - s["ram_bytes"] >= pad
    assert abs(p["flash_bytes"] - s["flash_bytes"]) < 256
    assert 1000 < s["flash_bytes"] < 64 * 1024  # startup + newlib-nano stdio + expf/sqrtf


# ----- host ----------------------------------------------------------------------------
@needs_host_cc
def test_host_build_and_run(tmp_path):
    proj = make_project(tmp_path / "host", "host", PROGRAM)
    exe = build(proj, "host")
    assert exe.name == "app"
    res = run_host(proj, timeout=20)
    assert res.exit_code == 0, res.stderr
    check_outputs(res.outputs())
    assert res.instructions is None
