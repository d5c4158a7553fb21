"""What a user reads: the text report of compile/simulate, the plots, and the board names
(aliases, "did you mean", --board-file)."""
from __future__ import annotations

import shutil
from pathlib import Path

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


# ----- the text report ------------------------------------------------------------------
import json  # noqa: E402
import re  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from onnx2mcu.examples import build_example  # noqa: E402
from onnx2mcu.latency import INSTR_PER_MAC  # noqa: E402
from onnx2mcu.pipeline import Options, ram_mark, run  # noqa: E402
from onnx2mcu.report import macs  # noqa: E402

BOARD = "nucleo-f746zg"


def shared_block(out: str) -> list[str]:
    """The lines of the report compile and simulate share: from 'board' to the last rewrite line."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("board "))
    end = start + 1
    while end < len(lines) and (lines[end][:1] == " " or lines[end].split(" ", 1)[0] in
                                ("ops", "flash", "RAM", "peak", "latency", "rewrites")):
        end += 1
    return lines[start:end]


@pytest.fixture(scope="module")
def cnn_compiled(tmp_path_factory):
    """`compile --example cnn --board nucleo-f746zg --verbose`: its text and report.json."""
    import contextlib
    import io

    out_dir = tmp_path_factory.mktemp("cnn") / "out"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["compile", "--example", "cnn", "--board", BOARD, "-o", str(out_dir), "--verbose"])
    assert code == 0
    return buffer.getvalue(), json.loads((out_dir / "report.json").read_text())


def test_verbose_table_columns_and_mac_total(cnn_compiled):
    text, report = cnn_compiled
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("node "))
    assert lines[head].split() == ["node", "op", "MACs", "weights", "B", "output", "B", "kernel", "dtype"]
    rows = []
    for line in lines[head + 1:]:
        if line.startswith("total"):
            total_line = line
            break
        rows.append(line.split())
    assert len(rows) == report["ops"] == 29
    column_sum = sum(int(r[2].replace(",", "")) for r in rows)
    graph = run(build_example("cnn"), Options(board=BOARD, stop_after="optimize")).graph
    assert column_sum == sum(macs(graph).values())  # the per-node counts of the op library
    assert int(total_line.split()[1].replace(",", "")) == column_sum
    assert f"MACs {column_sum:,}" in text
    assert sum(int(r[3].replace(",", "")) for r in rows) == int(total_line.split()[2].replace(",", "")) \
        == graph.weights_bytes
    # a float model on a Cortex-M7: Conv on the board's register-tiled float32 kernel
    # (codegen/emit/conv.py, backend arm-dsp), every other node on its portable one
    assert [r[-2] for r in rows] == [f"{r[1]}/float32/{'arm-dsp' if r[1] == 'Conv' else 'portable'}"
                                     for r in rows]
    assert all(r[-1] == "float32" for r in rows)


SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"
needs_shared = pytest.mark.skipif(not SHARED.exists(), reason=f"{SHARED} is absent (reference models)")


@needs_shared
def test_verbose_table_of_an_int8_model_names_the_projects_kernels(tmp_path, capsys):
    code, out, err = run_cli(capsys, "compile", str(SHARED / "mlperf_tiny" / "kws_ref_model.onnx"), "--board", BOARD,
                             "--scheduler", "greedy", "-o", str(tmp_path / "kws"), "-v")
    assert code == 0, err
    report = json.loads((tmp_path / "kws" / "report.json").read_text())
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("node "))
    rows = [line.split() for line in lines[head + 1:head + 1 + report["ops"]]]
    assert [r[-2] for r in rows] == [e["kernel"] for e in report["precision"]["nodes"]]
    assert [r[-1] for r in rows] == [e["dtype"] for e in report["precision"]["nodes"]]
    assert any(r[-2] == "Conv/int8/arm-dsp" for r in rows)
    assert "(int8 arm-dsp, measured on Cortex-M4F" in out


def test_latency_line_is_a_labelled_estimate(cnn_compiled):
    text, report = cnn_compiled
    line = next(line for line in text.splitlines() if line.startswith("latency"))
    assert "(estimate, not a measurement)" in line and "at 216 MHz" in line
    total = sum(int(n.replace(",", "")) for n in re.findall(r"MACs ([\d,]+)", text)[:1])
    figure = INSTR_PER_MAC[("float32", True)]
    assert f"x {figure.instr_per_mac:g} instructions/MAC" in text and "benchmarks/latency.md" in text
    assert "cycles/instruction (assumed; Cortex-M7 TRM" in text
    seconds = total * figure.instr_per_mac * 1.0 / 216e6
    assert f"~{seconds * 1e3:.1f} ms" in line


def test_host_latency_not_estimated(capsys):
    code, out, _ = run_cli(capsys, "simulate", "--example", "cnn", "--no-check")
    assert code == 0
    assert "latency    not estimated: the host has no clock figure" in out
    assert "flash      weights 91.1 KiB (93,296 B); no flash limit (host)" in out


def test_rewrite_summaries_say_why_not(cnn_compiled):
    text, _ = cnn_compiled
    assert "tiled attention/FFN: not applied: no attention or feed-forward block found" in text
    assert "embedding compression: not applied: not asked, and no embedding lookup found" in text
    assert "partial convolutions: not applied: no site found" in text


def test_simulate_and_compile_print_the_same_budget(cnn_compiled, capsys):
    compiled_text, report = cnn_compiled
    code, out, _ = run_cli(capsys, "simulate", "--example", "cnn", "--board", BOARD, "--no-check", "--verbose")
    assert code == 0
    block = shared_block(out)
    assert block == shared_block(compiled_text) and len(block) >= 8
    ram = next(line for line in block if line.startswith("RAM"))
    assert f"arena 192.0 KiB ({report['arena_bytes']:,} B)" in ram
    need = report["arena_bytes"] + report["budget"]["io_bytes"] + report["budget"]["stack_bytes"] + \
        report["budget"]["heap_bytes"]
    assert f"= {need:,} B of 320.0 KiB" in ram
    flash = next(line for line in block if line.startswith("flash"))
    assert f"{report['weights_bytes']:,} B internal" in flash and "no external memory" in flash
    # the per-node table is the same too
    assert [line for line in out.splitlines() if line.startswith("block")] == \
        [line for line in compiled_text.splitlines() if line.startswith("block")]


def test_flash_split_internal_external(tmp_path, capsys):
    path = tmp_path / "small.toml"
    path.write_text('name = "small-flash"\ncore = "cortex-m4"\nflash = "96K"\nram = "256K"\nclock_hz = 64_000_000\n'
                    '[[external]]\norigin = 0x90000000\nsize = "8M"\n')
    code, out, err = run_cli(capsys, "compile", "--example", "cnn", "--board-file", str(path), "-o",
                             str(tmp_path / "out"))
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    external = report["external_weights_bytes"]
    internal = report["weights_bytes"] - external
    assert external > 0 and internal <= 96 * 1024 - report["budget"]["code_bytes"]
    assert (f"{internal:,} B internal (of {96 * 1024 - 32 * 1024:,} B for weights: 96.0 KiB flash - 32.0 KiB "
            f"code allowance), {external:,} B external (of 8.00 MiB at 0x90000000)") in out
    # simulate for the same board sees the same split
    code, sim_out, _ = run_cli(capsys, "simulate", "--example", "cnn", "--board-file", str(path), "--no-check")
    assert shared_block(sim_out) == shared_block(out)


def test_tiling_summary_counts_the_extra_macs(capsys):
    """Tiles sized for a small RAM budget recompute K and V: the +X% is the MACs of the tiled
    model against the same model with --tile none."""
    code, out, _ = run_cli(capsys, "simulate", "--example", "bert-tiny", "--ram-budget", "150000", "--scheduler",
                           "greedy", "--no-check", "--board", "mps2-an386", "--json")
    assert code == 0
    data = json.loads(out)
    tiled_macs = data["summary"]["macs"]
    untiled = run(build_example("bert-tiny"), Options(tile="none", stop_after="optimize")).graph
    untiled_macs = sum(macs(untiled).values())
    line = next(e for e in data["summary"]["rewrites"] if e["pass"] == "tiling")
    assert line["applied"]
    percent = 100 * (tiled_macs - untiled_macs) / untiled_macs
    assert percent > 0 and line["text"].startswith(f"+{percent:.1f}% MACs, -")
    saved = data["tiling"]["untiled_peak_bytes"] - data["tiling"]["peak_bytes"]
    assert f"-{saved / 1024:.1f} KiB peak" in line["text"]


def embedding_model() -> onnx.ModelProto:
    table = np.random.default_rng(0).standard_normal((1024, 64)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"], name="lookup"),
         helper.make_node("ReduceMean", ["rows"], ["y"], name="mean", axes=[1], keepdims=0)],
        "emb", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [numpy_helper.from_array(table, "table")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_embedding_compression_summary(tmp_path, capsys):
    path = tmp_path / "emb.onnx"
    onnx.save(embedding_model(), path)
    code, out, _ = run_cli(capsys, "simulate", str(path), "--no-check")
    assert code == 0
    assert "embedding compression: not applied: not asked; 1 embedding table(s), 0.25 MiB, could be" in out
    code, out, _ = run_cli(capsys, "simulate", str(path), "--no-check", "--compress-embeddings", "4x", "--json")
    assert code == 0
    data = json.loads(out)
    section = data["embedding_compression"]
    line = next(e for e in data["summary"]["rewrites"] if e["pass"] == "embedding_compression")
    saved = section["weights_bytes_before"] - section["weights_bytes_after"]
    assert line["applied"] and line["text"].startswith(f"{section['ratio']:g}x on 1 table(s), weights -")
    assert f"-{saved / 1024:.1f} KiB" in line["text"] or f"-{saved / 2 ** 20:.2f} MiB" in line["text"]


def test_memory_rewrite_summary_matches_its_section():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from nets import DARTS_V2, nas_network

    from onnx2mcu.graph_opt import OptimizeOptions, optimize
    from onnx2mcu.report import rewrite_lines
    from onnx2mcu.scheduler.optimize import optimize as sched_optimize

    graph, report = optimize(nas_network("darts", DARTS_V2, cells=3, channels=4),
                             OptimizeOptions(peak_estimator=lambda g: sched_optimize(g, "greedy", 2).peak))
    lines = {e["pass"]: e for e in rewrite_lines(report)}
    section = report["act_on_load"]
    assert lines["act_on_load"]["applied"]
    assert lines["act_on_load"]["text"].startswith(f"{section['applied']} site(s), -")
    _, off = optimize(nas_network("darts", DARTS_V2, cells=3, channels=4), OptimizeOptions(rewrites="none"))
    lines = {e["pass"]: e for e in rewrite_lines(off)}
    assert lines["act_on_load"]["text"] == "not applied: off (--rewrites none)"


# ----- plots ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cnn_simulated():
    return run(build_example("cnn"), Options(simulate=True, board=BOARD, check_onnxruntime=False))


def test_plot_marks_the_board_ram_and_the_peak_op(cnn_simulated, tmp_path):
    from onnx2mcu.simulator.plot import memory_figure, plot_memory

    result = cnn_simulated
    data = result.simulation.to_dict()
    ram = ram_mark(result.graph, result.budget, result.board)
    assert ram["bytes"] == 320 * 1024 - 8192 - 4096 - 40  # RAM - stack - heap - the output buffer
    fig, marks = memory_figure(data, ram)
    ax = fig.axes[0]
    ram_lines = [line for line in ax.get_lines() if line.get_label() == marks["ram_label"]]
    assert len(ram_lines) == 1 and list(ram_lines[0].get_ydata()) == [ram["bytes"] / 1024] * 2
    assert BOARD in marks["ram_label"]
    labels = [t.get_text() for t in ax.get_xticklabels(minor=True)]
    assert labels == [f"{data['peak_op']} {data['peak_node']}"] == [marks["peak_label"]]
    assert list(ax.get_xticks(minor=True)) == [data["peak_step"]]
    out = tmp_path / "memory.png"
    plot_memory(data, str(out), ram)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_layout_draws_one_rectangle_per_planned_buffer(cnn_simulated, tmp_path):
    from matplotlib.patches import Rectangle

    from onnx2mcu.simulator.plot import layout_figure

    result = cnn_simulated
    data = result.simulation.to_dict()
    fig, marks = layout_figure(data, ram_mark(result.graph, result.budget, result.board))
    rects = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    plan = result.schedule.plan
    assert marks["rectangles"] == len(rects) == len(plan.offsets) == len(data["buffers"]) > 5
    by_offset = sorted((r.get_y() * 1024, r.get_height() * 1024, r.get_x() + 0.5) for r in rects)
    expected = sorted((float(plan.offsets[b.index]), float(b.nbytes), float(b.first))
                      for b in result.schedule.profile.buffers if b.index in plan.offsets)
    assert by_offset == expected
    assert marks["ram_line"] is not None


def test_cli_writes_both_plots(tmp_path, capsys):
    memory, layout = tmp_path / "m.png", tmp_path / "l.png"
    code, out, _ = run_cli(capsys, "simulate", "--example", "dscnn", "--no-check", "--plot", str(memory),
                           "--plot-layout", str(layout))
    assert code == 0 and f"layout     {layout}" in out
    for path in (memory, layout):
        assert path.read_bytes()[:4] == b"\x89PNG"


# ----- the latency figures are the benchmark's -------------------------------------------------
def test_latency_figures_are_the_benchmarks():
    """onnx2mcu/latency.py's instructions/MAC are the pooled row of benchmarks/latency.md, that
    file's rows pool to it, and its Cortex-M4 columns are today's c_backend.md and int8.md."""
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    from latency_bench import COLUMNS, MODELS, m4_figures, table_rows

    rows = table_rows(root / "benchmarks" / "latency.md")
    pooled = rows["**pooled instructions / MAC**"]
    figures = dict(zip(COLUMNS, (float(c.strip("*")) for c in pooled[3:])))
    assert figures["m4_float32"] == INSTR_PER_MAC[("float32", True)].instr_per_mac
    assert figures["m4_int8_portable"] == INSTR_PER_MAC[("int8 portable", True)].instr_per_mac
    assert figures["m4_int8_arm_dsp"] == INSTR_PER_MAC[("int8 arm-dsp", True)].instr_per_mac
    assert figures["m3_float32_soft"] == INSTR_PER_MAC[("float32", False)].instr_per_mac
    assert figures["m3_int8_portable"] == INSTR_PER_MAC[("int8 portable", False)].instr_per_mac
    m4 = m4_figures()
    sums = {c: [0, 0] for c in COLUMNS}
    for key, (label, *_rest) in MODELS.items():
        cells = rows[label]
        float_macs, int8_macs = (int(c.replace(",", "")) for c in cells[1:3])
        for column, cell in zip(COLUMNS, cells[3:]):
            instructions = int(cell.split(" ")[0].replace(",", ""))
            if column.startswith("m4"):
                assert instructions == m4[key][column], (label, column)
            sums[column][0] += instructions
            sums[column][1] += int8_macs if "int8" in column else float_macs
    for column, (instructions, total_macs) in sums.items():
        assert round(instructions / total_macs, 2) == figures[column], column


@needs_shared
def test_latency_benchmark_macs_are_todays():
    """The MACs benchmarks/latency.md divides by are what report.macs gives these models today."""
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    from latency_bench import MODELS, model_macs, table_rows

    rows = table_rows(root / "benchmarks" / "latency.md")
    for label, float_rel, _, int8_rel, _ in MODELS.values():
        cells = rows[label]
        assert int(cells[1].replace(",", "")) == model_macs(SHARED.parent / float_rel), label
        assert int(cells[2].replace(",", "")) == model_macs(SHARED.parent / int8_rel), label
