"""What a user reads: the text report of compile/simulate, the plots, and the board names
(aliases, "did you mean", --board-file)."""
from __future__ import annotations

import shutil

import pytest

from onnx2mcu.board_file import board_from_dict, load_board_file, parse_bytes
from onnx2mcu.cli import main
from onnx2mcu.errors import UserError
from onnx2mcu.targets import get_board

HAVE_QEMU = shutil.which("qemu-system-arm") is not None and shutil.which("arm-none-eabi-gcc") is not None


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----- board names ---------------------------------------------------------------------
@pytest.mark.parametrize("alias, board", [("STM32F746ZG", "nucleo-f746zg"), ("nRF52840", "nrf52840dk"),
                                          ("RP2040", "rp2040"), ("pico", "rp2040"),
                                          ("stm32h743zi", "nucleo-h743zi"), ("AN505", "mps2-an505")])
def test_chip_names_are_aliases(alias, board):
    assert get_board(alias).name == board


def test_near_miss_says_did_you_mean(capsys):
    code, out, err = run_cli(capsys, "simulate", "--example", "cnn", "--board", "nucleo-f746z")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "(did you mean nucleo-f746zg?)" in err
    # a near miss of an alias names the board the alias stands for
    with pytest.raises(UserError, match=r"did you mean nucleo-f746zg\?"):
        get_board("stm32f746zh")
    with pytest.raises(UserError) as err:
        get_board("arduino-uno")
    assert "did you mean" not in str(err.value) and "nucleo-f746zg" in str(err.value)


BOARD_TOML = """
name = "my-f411"
core = "cortex-m4"
flash = "512K"
flash_origin = 0x08000000
ram = "128 KiB"
clock_hz = 100_000_000
"""


def test_board_file_makes_a_board(tmp_path):
    path = tmp_path / "board.toml"
    path.write_text(BOARD_TOML + '\n[[external]]\norigin = 0x90000000\nsize = "16M"\n')
    board = load_board_file(path)
    assert (board.name, board.core, board.flash_bytes, board.ram_bytes, board.clock_hz) == (
        "my-f411", "cortex-m4", 512 * 1024, 128 * 1024, 100_000_000)
    assert (board.flash_origin, board.ram_origin, board.ext_origin, board.ext_bytes) == (
        0x08000000, 0x20000000, 0x90000000, 16 << 20)
    assert "-mfpu=fpv4-sp-d16" in board.cpu_flags and board.kernels[0] == "arm-dsp"
    soft = board_from_dict({"core": "cortex-m0+", "flash": 2 << 20, "ram": "264K"}, "x.toml")
    assert soft.core == "cortex-m0plus" and not soft.fpu and "-mfloat-abi=soft" in soft.cpu_flags
    assert soft.kernels == ("portable",)
    assert parse_bytes("0x80000", "f") == 512 * 1024 and parse_bytes("1.5M", "f") == 3 << 19


def test_compile_with_board_file(tmp_path, capsys):
    path = tmp_path / "board.toml"
    path.write_text(BOARD_TOML)
    code, out, err = run_cli(capsys, "compile", "--example", "dscnn", "--board-file", str(path),
                             "-o", str(tmp_path / "out"))
    assert code == 0, err
    assert "(board my-f411)" in out
    board_ld = (tmp_path / "out" / "board.ld").read_text()
    assert "ORIGIN = 0x08000000, LENGTH = FLASH_SIZE" in board_ld and "RAM_SIZE   = DEFINED(RAM_SIZE)   ? RAM_SIZE   : 0x20000" in board_ld


@pytest.mark.parametrize("text, message", [
    ('core = "cortex-m4\n', "not valid TOML"),
    ('core = "cortex-m4"\nflash = "lots"\nram = 1\n', "field 'flash': expected a size in bytes"),
    ('core = "cortex-m9"\nflash = 1\nram = 1\n', "field 'core': 'cortex-m9' is not one of"),
    ('core = "cortex-m4"\nram = 1\n', "missing field 'flash'"),
    ('core = "cortex-m4"\nflash = 1\nram = 1\nspeed = 3\n', "unknown field 'speed'"),
    ('core = "cortex-m3"\nflash = 1\nram = 1\nfpu = "single"\n', "field 'fpu'"),
    ('name = "rp2040"\ncore = "cortex-m4"\nflash = 1\nram = 1\n', "is a built-in board"),
    ('core = "cortex-m4"\nflash = "1M"\nram = "1M"\nram_origin = 0x0\n', "overlaps"),
    ('core = "cortex-m4"\nflash = 1\nram = 1\nclock_hz = "fast"\n', "field 'clock_hz'"),
    ('core = "cortex-m4"\nflash = 1\nram = 1\n[[external]]\norigin = 0x90000000\nsize = 1\n'
     '[[external]]\norigin = 0xA0000000\nsize = 1\n', "one external region"),
])
def test_bad_board_file_is_one_line_exit_2(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out_dir = tmp_path / "out"
    code, out, err = run_cli(capsys, "compile", "--example", "cnn", "--board-file", str(path), "-o", str(out_dir))
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert err.startswith("onnx2mcu: error: ") and not out_dir.exists()


def test_missing_board_file_and_disagreeing_board(tmp_path, capsys):
    code, _, err = run_cli(capsys, "simulate", "--example", "cnn", "--board-file", str(tmp_path / "nope.toml"))
    assert code == 2 and "no such file" in err
    path = tmp_path / "board.toml"
    path.write_text(BOARD_TOML)
    code, _, err = run_cli(capsys, "simulate", "--example", "cnn", "--board-file", str(path), "--board", "rp2040")
    assert code == 2 and "disagree" in err


@pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-arm or arm-none-eabi-gcc not installed")
def test_board_file_for_an_emulated_machine_puts_weights_in_external_memory(tmp_path, capsys):
    """A board file on QEMU's AN505 with a flash too small for the weights: the largest tables go
    to the PSRAM region the file names, and the program still runs and agrees."""
    path = tmp_path / "an505.toml"
    path.write_text('name = "an505-small"\ncore = "cortex-m33"\nqemu_machine = "mps2-an505"\nflash = "96K"\n'
                    'flash_origin = 0x10000000\nram = "4M"\nram_origin = 0x38000000\n'
                    '[[external]]\norigin = 0x80000000\nsize = "16M"\n')
    out_dir = tmp_path / "out"
    code, _, err = run_cli(capsys, "compile", "--example", "dscnn", "--board-file", str(path), "-o", str(out_dir))
    assert code == 0, err
    import json

    report = json.loads((out_dir / "report.json").read_text())
    assert report["external_weights_bytes"] > 0
    code, out, err = run_cli(capsys, "run", str(out_dir), "--qemu")
    assert code == 0, err + out
    assert "agree" in out
