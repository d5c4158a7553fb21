"""The codegen step of `compile`: IR + schedule -> the output folder (sources, kernels, harness,
board files, report).  pipeline.run calls `emit_project`; build.compile_model is the API entry."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx

from onnx2mcu.budget import MemoryBudget, Need, harness_bytes, io_bytes
from onnx2mcu.codegen.board_project import write_board_files
from onnx2mcu.codegen.context import c_identifier
from onnx2mcu.codegen.generate import dump_json, render_model, runtime_files
from onnx2mcu.codegen.output_dir import write_output
from onnx2mcu.errors import UserError
from onnx2mcu.version import __version__
from onnx2mcu.frontend.load import read_model
from onnx2mcu.ir import Graph
from onnx2mcu.report import schedule_entries, tensor_entries, weights_split
from onnx2mcu.scheduler import Schedule
from onnx2mcu.targets import Board

SOURCE_MODEL = "source.onnx"
TEST_INPUTS = "test_inputs.npz"


@dataclass
class CompileResult:
    out_dir: Path
    graph: Graph
    schedule: Schedule
    board: Board
    report: dict


def external_weights_for(graph: Graph, budget: MemoryBudget) -> set[str]:
    """Constants that go to the board's external memory: none unless the flash cannot hold them
    (report.weights_split, which the text report's flash line uses too)."""
    return weights_split(graph, budget)[0]


def need_of(graph: Graph, sched: Schedule, external: set[str]) -> Need:
    """What the planned model asks of the board (the harness's test inputs are not the model's)."""
    step = sched.profile.peak_step
    node = sched.order[step] if sched.order else None
    ext_bytes = sum(graph.tensors[n].nbytes for n in external)
    return Need(arena_bytes=sched.arena_bytes, io_bytes=io_bytes(graph),
                weights_bytes=graph.weights_bytes - ext_bytes, external_bytes=ext_bytes,
                peak_step=step if node else None, peak_node=node.name if node else None,
                peak_op=node.op_type if node else None)


def emit_project(model, out_dir: str | os.PathLike, graph: Graph, sched: Schedule, board: Board,
                 budget: MemoryBudget, values: Mapping[str, np.ndarray], prefix: str = "model",
                 force: bool = False, optimization: dict | None = None, fmt: str = "project",
                 io: str = "semihosting") -> CompileResult:
    """The codegen stage: check the budget (unless `force`), render, write the output folder
    (codegen/output_dir.py: never a file of the user's).  `fmt` is one of
    codegen.formats.FORMATS; all but "project" write no harness or board files."""
    from onnx2mcu.codegen.formats import FORMATS, format_files

    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    if fmt != "project" and io != "semihosting":
        raise UserError(f"--io {io} is for the test harness of --format project; --format {fmt} has no harness")
    external = external_weights_for(graph, budget)
    if not force:
        budget.check(need_of(graph, sched, external), graph.source)
    values = dict(values)
    generated = render_model(graph, sched, prefix=prefix, test_inputs=values, external=external,
                             board=board)
    from onnx2mcu.graph_opt.pipeline import NOT_IN_BUILD_REPORT

    report = {**build_report(graph, sched, board, budget, generated.report, prefix),
              **{k: v for k, v in (optimization or {}).items() if k not in NOT_IN_BUILD_REPORT}}
    precision = _precision(graph, board)
    if precision is not None:  # quantized models: per node dtype and C kernel, the float islands
        report["precision"] = precision
    if io != "semihosting":
        report["io"] = io  # how `onnx2mcu flash --read-results` gets the outputs back
    files: dict[str, str | bytes] = dict(generated.files)
    kernels = runtime_files(generated.kernel_sources)
    if fmt != "project":
        lib = format_files(fmt, generated.files, kernels, c_identifier(prefix), board, __version__,
                           os.path.basename(graph.source) or graph.name)
        out = write_output(out_dir, lib, None, force=force, version=__version__)
        return CompileResult(out, graph, sched, board, report)
    files.update(kernels)
    files["report.json"] = dump_json(report)
    proto = model if isinstance(model, onnx.ModelProto) else read_model(model)[0]
    files[SOURCE_MODEL] = proto.SerializeToString()

    def finish(tmp: Path) -> None:
        np.savez(tmp / TEST_INPUTS, **values)
        sources = sorted([f"{generated_name}" for generated_name in generated.files if generated_name.endswith(".c")]
                         + [name for name in kernels if name.endswith(".c")])
        write_board_files(board, tmp, sources, stack_bytes=budget.stack_bytes, heap_bytes=budget.heap_bytes,
                          io=io, rtt_buffer_bytes=rtt_bytes_for(graph))

    out = write_output(out_dir, files, finish, force=force, version=__version__)
    return CompileResult(out, graph, sched, board, report)


def _precision(graph: Graph, board: Board) -> dict | None:
    from onnx2mcu.codegen.kernels import Selection, select_kernel
    from onnx2mcu.report import precision_report

    kernels = {}
    for node in graph.nodes:
        found = select_kernel(node, graph, board.kernels)
        kernels[node.name] = found.kernel.name if isinstance(found, Selection) else None
    return precision_report(graph, kernels)


def rtt_bytes_for(graph: Graph) -> int:
    """An RTT buffer that holds every output line of the harness (o2m_io.h), rounded up."""
    words = sum(graph.tensors[n].numel for n in graph.outputs)
    text = 17 * words + 80 * (len(graph.outputs) + 1) + sum(len(n) for n in graph.outputs)
    return max(256, (text + 255) // 256 * 256)


def build_report(graph: Graph, sched: Schedule, board: Board, budget: MemoryBudget, codegen: dict,
                 prefix: str) -> dict:
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
        # the budget the build was checked against, and the harness's own flash (its const
        # test inputs), which is not counted against it (onnx2mcu/budget.py)
        "budget": budget.summary(io_bytes(graph)),
        "harness_bytes": harness_bytes(graph),
        # timings vary from run to run: leave them out to keep the files reproducible
        "scheduler": {k: v for k, v in sched.report().items()
                      if k != "seconds" and not k.endswith("_seconds")},
        "schedule": schedule_entries(sched),
        "tensors": tensor_entries(graph, sched),
        "kernels": codegen["kernels"],
        "c_io": codegen["c_io"],
        "prefix": prefix,
    }
