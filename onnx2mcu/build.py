"""`compile`: model -> a C project folder (model sources, kernels, harness, board files, report)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import onnx

from onnx2mcu.codegen.board_project import DEFAULT_HEAP_BYTES, DEFAULT_STACK_BYTES, write_board_files
from onnx2mcu.codegen.context import c_identifier
from onnx2mcu.codegen.weights import external_weights
from onnx2mcu.codegen.generate import dump_json, render_model, runtime_files, write_project
from onnx2mcu.errors import UserError
from onnx2mcu.frontend import load
from onnx2mcu.frontend.load import read_model
from onnx2mcu.ir import Graph
from onnx2mcu.report import schedule_entries, tensor_entries
from onnx2mcu.scheduler import Schedule, schedule
from onnx2mcu.simulator.compare import seeded_inputs
from onnx2mcu.targets import Board, get_board

SOURCE_MODEL = "source.onnx"
TEST_INPUTS = "test_inputs.npz"


@dataclass
class CompileResult:
    out_dir: Path
    graph: Graph
    schedule: Schedule
    board: Board
    report: dict


# flash for the kernels, startup code and the C library (newlib-nano, semihosting): the
# MLPerf Tiny models link with 20-30 KiB of code besides their weights
CODE_ALLOWANCE = 32 * 1024


def check_budget(graph: Graph, sched: Schedule, board: Board,
                 stack_bytes: int = DEFAULT_STACK_BYTES, heap_bytes: int = DEFAULT_HEAP_BYTES) -> None:
    """Fail before emitting anything when arena or weights cannot fit the board."""
    if board.is_host or board.ram_bytes is None:
        return
    problems = []
    ram_needed = sched.arena_bytes + stack_bytes + heap_bytes + _io_bytes(graph)
    if ram_needed > board.ram_bytes:
        step = sched.profile.peak_step
        node = sched.order[step] if sched.order else None
        where = f" (peak at step {step}: {node.name}, {node.op_type})" if node else ""
        problems.append(f"RAM: needs {ram_needed} B (arena {sched.arena_bytes}{where} + stack "
                        f"{stack_bytes} + heap {heap_bytes} + test I/O {_io_bytes(graph)}) but "
                        f"{board.name} has {board.ram_bytes} B")
    test_inputs = sum(graph.tensors[n].nbytes for n in graph.inputs)
    external = external_weights_for(graph, board)
    ext_bytes = sum(graph.tensors[n].nbytes for n in external)
    internal = graph.weights_bytes - ext_bytes
    flash_needed = internal + test_inputs + CODE_ALLOWANCE
    if board.flash_bytes is not None and flash_needed > board.flash_bytes:
        problems.append(f"flash: needs about {flash_needed} B (weights {internal} + test "
                        f"inputs {test_inputs} + ~{CODE_ALLOWANCE} for code) but {board.name} has "
                        f"{board.flash_bytes} B")
    if board.ext_bytes is not None and ext_bytes > board.ext_bytes:
        problems.append(f"external memory: {ext_bytes} B of weight tables but {board.name} has "
                        f"{board.ext_bytes} B")
    if problems:
        raise UserError(f"{graph.source}: does not fit {board.name}: " + "; ".join(problems) +
                        "; pick a bigger board or pass --force to emit anyway")


def external_weights_for(graph: Graph, board: Board) -> set[str]:
    """Constants that go to the board's external memory: none unless the flash cannot hold them."""
    if board.ext_bytes is None or board.flash_bytes is None:
        return set()
    test_inputs = sum(graph.tensors[n].nbytes for n in graph.inputs)
    return external_weights(graph, board.flash_bytes - CODE_ALLOWANCE - test_inputs)


def _io_bytes(graph: Graph) -> int:
    """The harness keeps output buffers in RAM (inputs are const, in flash)."""
    return sum(graph.tensors[n].nbytes for n in graph.outputs)


def compile_model(model, out_dir: str | os.PathLike, board: str | Board = "host",
                  input_shapes: Mapping[str, Sequence[int]] | None = None,
                  inputs: Mapping[str, np.ndarray] | None = None, scheduler: str | None = None,
                  time_limit: float = 60.0, force: bool = False, prefix: str = "model",
                  seed: int = 0, graph: Graph | None = None,
                  optimization: dict | None = None, fmt: str = "project",
                  io: str = "semihosting") -> CompileResult:
    """`graph` (already loaded and optimized) skips loading; `optimization` is what graph_opt did.

    `fmt` is one of codegen.formats.FORMATS; all but "project" write no harness or board files."""
    from onnx2mcu.codegen.formats import FORMATS, format_files

    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    if fmt != "project" and io != "semihosting":
        raise UserError(f"--io {io} is for the test harness of --format project; --format {fmt} has no harness")
    board = get_board(board)
    if graph is None:
        from onnx2mcu.graph_opt import optimize

        graph, optimization = optimize(load(model, input_shapes))
    from onnx2mcu.scheduler import METHODS

    sched = schedule(graph, scheduler or METHODS[0], time_limit=time_limit)
    if not force:
        check_budget(graph, sched, board)
    values = dict(inputs) if inputs is not None else seeded_inputs(graph, seed)
    generated = render_model(graph, sched, prefix=prefix, test_inputs=values,
                             external=external_weights_for(graph, board))
    report = {**build_report(graph, sched, board, generated.report, prefix), **(optimization or {})}
    if io != "semihosting":
        report["io"] = io  # how `onnx2mcu flash --read-results` gets the outputs back
    files: dict[str, str | bytes] = dict(generated.files)
    kernels = runtime_files(generated.kernel_sources)
    if fmt != "project":
        from onnx2mcu import __version__

        lib = format_files(fmt, generated.files, kernels, c_identifier(prefix), board, __version__,
                           os.path.basename(graph.source) or graph.name)
        out = write_project(out_dir, lib, None, force=force)
        return CompileResult(out, graph, sched, board, report)
    files.update(kernels)
    files["report.json"] = dump_json(report)
    proto = model if isinstance(model, onnx.ModelProto) else read_model(model)[0]
    files[SOURCE_MODEL] = proto.SerializeToString()

    def finish(tmp: Path) -> None:
        np.savez(tmp / TEST_INPUTS, **values)
        sources = sorted([f"{generated_name}" for generated_name in generated.files if generated_name.endswith(".c")]
                         + [name for name in kernels if name.endswith(".c")])
        write_board_files(board, tmp, sources, io=io, rtt_buffer_bytes=rtt_bytes_for(graph))

    out = write_project(out_dir, files, finish, force=force)
    return CompileResult(out, graph, sched, board, report)


def rtt_bytes_for(graph: Graph) -> int:
    """An RTT buffer that holds every output line of the harness (o2m_io.h), rounded up."""
    words = sum(graph.tensors[n].numel for n in graph.outputs)
    text = 17 * words + 80 * (len(graph.outputs) + 1) + sum(len(n) for n in graph.outputs)
    return max(256, (text + 255) // 256 * 256)


def build_report(graph: Graph, sched: Schedule, board: Board, codegen: dict, prefix: str) -> dict:
    step = sched.profile.peak_step
    return {
        "model": os.path.basename(graph.source) or graph.name,
        "ops": len(graph.nodes),
        "peak_bytes": sched.peak_bytes,
        "arena_bytes": sched.arena_bytes,
        "weights_bytes": codegen["weights_bytes"],
        "external_weights_bytes": codegen["external_weights_bytes"],
        "peak_step": step,
        "peak_node": sched.order[step].name if sched.order else None,
        "notes": graph.notes,
        "inputs": {n: {"shape": list(graph.tensors[n].shape), "dtype": graph.tensors[n].dtype.value}
                   for n in graph.inputs},
        "outputs": {n: {"shape": list(graph.tensors[n].shape), "dtype": graph.tensors[n].dtype.value}
                    for n in graph.outputs},
        "board": board.summary(),
        # timings vary from run to run: leave them out to keep the files reproducible
        "scheduler": {k: v for k, v in sched.report().items()
                      if k != "seconds" and not k.endswith("_seconds")},
        "schedule": schedule_entries(sched),
        "tensors": tensor_entries(graph, sched),
        "kernels": codegen["kernels"],
        "c_io": codegen["c_io"],
        "prefix": prefix,
    }
