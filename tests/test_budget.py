"""The memory budget (onnx2mcu/budget.py): what each board leaves to the model, and the fit check.

* RAM for the arena = board RAM - stack - heap - I/O buffers; `--ram-budget` replaces
  RAM - stack - heap for tile sizing but the fit check stays against the board.
* Flash for weights = board flash - the code allowance; the harness's compiled-in test
  inputs are not counted (they are the harness's, reported as report.json "harness_bytes"),
  neither in the fit check nor in the split between internal flash and external memory.
* A plan that does not fit gets one message: bytes needed, bytes available, the peak step.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx2mcu.budget import (CODE_ALLOWANCE, DEFAULT_HEAP_BYTES, DEFAULT_STACK_BYTES, FRAGMENTATION_MARGIN,
                             MemoryBudget, Need, harness_bytes, io_bytes)
from onnx2mcu.build import compile_model, external_weights_for, need_of
from onnx2mcu.errors import UserError
from onnx2mcu.frontend import load
from onnx2mcu.scheduler import schedule
from onnx2mcu.targets import get_board

pytestmark = [pytest.mark.unit]


@pytest.mark.parametrize("name", ["nucleo-f746zg", "rp2040", "nrf52840dk", "mps2-an386"])
def test_board_budgets(name):
    board = get_board(name)
    budget = MemoryBudget.for_board(name)
    model_ram = board.ram_bytes - DEFAULT_STACK_BYTES - DEFAULT_HEAP_BYTES
    assert budget.model_ram() == model_ram
    assert budget.ram_for_arena(io=1000) == model_ram - 1000
    assert budget.arena_target(io=1000) == int((model_ram - 1000) * FRAGMENTATION_MARGIN)
    assert budget.flash_for_weights() == board.flash_bytes - CODE_ALLOWANCE
    assert budget.has_external == (board.ext_bytes is not None)
    # exactly the board's RAM fits; one byte more does not
    full = Need(arena_bytes=model_ram - 1000, io_bytes=1000, weights_bytes=budget.flash_for_weights())
    assert budget.fit(full).ok
    over = Need(arena_bytes=model_ram - 999, io_bytes=1000, weights_bytes=0)
    assert not budget.fit(over).ok


def test_host_has_no_limits():
    budget = MemoryBudget.for_board("host")
    assert budget.model_ram() is None and budget.ram_for_arena(10) is None
    assert budget.arena_target(10) is None and budget.flash_for_weights() is None
    assert not budget.has_external
    assert budget.fit(Need(arena_bytes=1 << 40, io_bytes=1 << 30, weights_bytes=1 << 40)).ok
    assert MemoryBudget.for_board(None).fit(Need(1 << 40, 0, 1 << 40)).ok


def test_ram_budget_steers_tiling_not_the_check():
    budget = MemoryBudget.for_board("nucleo-f746zg", ram_budget=100_000)
    assert budget.model_ram() == 100_000 and budget.ram_for_arena(500) == 99_500
    # a 200 KB arena is over the --ram-budget but fits the board: the check is the board's
    assert budget.fit(Need(arena_bytes=200_000, io_bytes=500, weights_bytes=0)).ok
    # the budget alone (the host with --ram-budget) sizes tiles and checks nothing
    host = MemoryBudget.for_board("host", ram_budget=50_000)
    assert host.arena_target(0) == int(50_000 * FRAGMENTATION_MARGIN) and host.fit(Need(1 << 30, 0, 0)).ok


def test_stack_and_heap_count():
    small = MemoryBudget.for_board("rp2040", stack_bytes=2048, heap_bytes=0)
    assert small.model_ram() == get_board("rp2040").ram_bytes - 2048
    need = Need(arena_bytes=get_board("rp2040").ram_bytes - 2048, io_bytes=0, weights_bytes=0)
    assert small.fit(need).ok and not MemoryBudget.for_board("rp2040").fit(need).ok


def test_messages_name_needed_available_and_peak():
    budget = MemoryBudget.for_board("nucleo-f746zg")
    board = get_board("nucleo-f746zg")
    need = Need(arena_bytes=400_000, io_bytes=40, weights_bytes=2_000_000, peak_step=7,
                peak_node="conv_3", peak_op="Conv")
    fit = budget.fit(need)
    assert len(fit.problems) == 2
    ram, flash = fit.problems
    assert f"needs {400_000 + DEFAULT_STACK_BYTES + DEFAULT_HEAP_BYTES + 40} B" in ram
    assert f"has {board.ram_bytes} B" in ram and "peak at step 7: conv_3, Conv" in ram
    assert f"needs about {2_000_000 + CODE_ALLOWANCE} B" in flash and f"has {board.flash_bytes} B" in flash
    with pytest.raises(UserError) as err:
        budget.check(need, "m.onnx")
    msg = str(err.value)
    assert msg.startswith("m.onnx: does not fit nucleo-f746zg: RAM: ") and "--force" in msg
    ext = MemoryBudget.for_board("mps2-an386").fit(Need(0, 0, 0, external_bytes=17 * 1024 * 1024))
    assert not ext.ok and "external memory" in ext.problems[0]


# ----- the harness's test inputs are not the model's ------------------------------------------
def _matmul_model(path, k: int, n: int) -> str:
    """y = x[1, k] @ W[k, n]: k*n*4 bytes of weights, k*4 bytes of (harness) input."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])
    w = numpy_helper.from_array(np.full((k, n), 0.5, dtype=np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "mm", [x], [y], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def test_harness_inputs_do_not_count_against_flash(tmp_path):
    """Weights that fit the flash with the code allowance, plus 64 KiB of test inputs that
    would not: the model fits (the inputs are the harness's) and the report says so apart."""
    k = 16 * 1024  # 64 KiB of float input
    flash = MemoryBudget.for_board("nucleo-f746zg").flash_for_weights()
    n = flash // (4 * k)  # the most weight columns that fit
    model = _matmul_model(tmp_path / "mm.onnx", k, n)
    graph = load(model)
    assert graph.weights_bytes <= flash < graph.weights_bytes + harness_bytes(graph)
    result = compile_model(model, tmp_path / "out", board="nucleo-f746zg", scheduler="file-order")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["harness_bytes"] == 4 * k == harness_bytes(result.graph)
    assert report["budget"]["flash_for_weights"] == flash
    assert report["budget"]["io_bytes"] == 4 * n == io_bytes(result.graph)
    # one more column does not fit, whatever the harness
    bigger = _matmul_model(tmp_path / "big.onnx", k, n + 1)
    with pytest.raises(UserError, match=r"does not fit nucleo-f746zg: flash: needs about"):
        compile_model(bigger, tmp_path / "big", board="nucleo-f746zg", scheduler="file-order")
    assert not (tmp_path / "big").exists()


def test_external_split_ignores_harness_inputs(tmp_path):
    """mps2-an386 (4 MiB flash + 16 MiB external): a table of exactly the flash left for
    weights stays internal; only the larger one moves out, however big the test inputs are."""
    budget = MemoryBudget.for_board("mps2-an386")
    flash = budget.flash_for_weights()
    k, n1 = 1024, flash // (4 * 1024)  # W1 [1024, n1] is exactly `flash` bytes
    assert 4 * k * n1 == flash
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n1 + 200])
    w1 = numpy_helper.from_array(np.zeros((k, n1), dtype=np.float32), "W1")
    w2 = numpy_helper.from_array(np.zeros((n1, n1 + 200), dtype=np.float32), "W2")
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h"]), helper.make_node("MatMul", ["h", "W2"], ["y"])]
    proto = helper.make_model(helper.make_graph(nodes, "split", [x], [y], [w1, w2]),
                              opset_imports=[helper.make_opsetid("", 17)])
    graph = load(proto)
    external = external_weights_for(graph, budget)
    assert external == {"W2"}  # the largest first until the rest fits; W1 fills the flash exactly
    need = need_of(graph, schedule(graph, "file-order"), external)
    assert need.weights_bytes == flash and need.external_bytes == graph.weights_bytes - flash
    assert budget.fit(need).ok
    assert external_weights_for(graph, MemoryBudget.for_board("nucleo-f746zg")) == set()  # no ext memory
