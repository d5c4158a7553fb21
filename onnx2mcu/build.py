"""`compile`: model -> a C project folder (model sources, kernels, harness, board files, report)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import onnx

from onnx2mcu.budget import MemoryBudget, Need, harness_bytes, io_bytes
from onnx2mcu.codegen.board_project import write_board_files
from onnx2mcu.codegen.weights import external_weights
from onnx2mcu.codegen.generate import dump_json, render_model, runtime_files
from onnx2mcu.fileio import write_folder_atomic
from onnx2mcu.codegen.generate import c_support, raise_unsupported
from onnx2mcu.frontend.load import read_model
from onnx2mcu.ir import Graph
from onnx2mcu.report import schedule_entries, tensor_entries
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
    """Constants that go to the board's external memory: none unless the flash cannot hold them."""
    if not budget.has_external:
        return set()
    return external_weights(graph, budget.flash_for_weights())


def need_of(graph: Graph, sched: Schedule, external: set[str]) -> Need:
    """What the planned model asks of the board (the harness's test inputs are not the model's)."""
    step = sched.profile.peak_step
    node = sched.order[step] if sched.order else None
    ext_bytes = sum(graph.tensors[n].nbytes for n in external)
    return Need(arena_bytes=sched.arena_bytes, io_bytes=io_bytes(graph),
                weights_bytes=graph.weights_bytes - ext_bytes, external_bytes=ext_bytes,
                peak_step=step if node else None, peak_node=node.name if node else None,
                peak_op=node.op_type if node else None)


def compile_model(model, out_dir: str | os.PathLike, board: str | Board = "host",
                  input_shapes: Mapping[str, Sequence[int]] | None = None,
                  inputs: Mapping[str, np.ndarray] | None = None, scheduler: str | None = None,
                  time_limit: float = 60.0, force: bool = False, prefix: str = "model",
                  seed: int = 0, graph: Graph | None = None,
                  optimization: dict | None = None, **options) -> CompileResult:
    """`onnx2mcu compile` from code: the pipeline (onnx2mcu/pipeline.py) with an output folder.

    `graph` (already loaded and optimized) skips loading and graph_opt; `optimization` is
    then what graph_opt did.  `options` are the other fields of `pipeline.Options`."""
    from onnx2mcu import pipeline

    opts = pipeline.Options(board=board, input_shapes=input_shapes, inputs=inputs,
                            scheduler=scheduler or pipeline.Options.scheduler, time_limit=time_limit,
                            force=force, prefix=prefix, seed=seed, output=out_dir, **options)
    return pipeline.run(model, opts, graph=graph, optimization=optimization).compiled


def emit_project(model, out_dir: str | os.PathLike, graph: Graph, sched: Schedule, board: Board,
                 budget: MemoryBudget, values: Mapping[str, np.ndarray], prefix: str = "model",
                 force: bool = False, optimization: dict | None = None) -> CompileResult:
    """The codegen stage: check the budget (unless `force`), render, write the folder atomically."""
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
    files: dict[str, str | bytes] = dict(generated.files)
    kernels = runtime_files(generated.kernel_sources)
    files.update(kernels)
    files["report.json"] = dump_json(report)
    proto = model if isinstance(model, onnx.ModelProto) else read_model(model)[0]
    files[SOURCE_MODEL] = proto.SerializeToString()

    def finish(tmp: Path) -> None:
        np.savez(tmp / TEST_INPUTS, **values)
        sources = sorted([f"{generated_name}" for generated_name in generated.files if generated_name.endswith(".c")]
                         + [name for name in kernels if name.endswith(".c")])
        write_board_files(board, tmp, sources, stack_bytes=budget.stack_bytes, heap_bytes=budget.heap_bytes)

    out = write_folder_atomic(out_dir, files, finish)
    return CompileResult(out, graph, sched, board, report)


def _precision(graph: Graph, board: Board) -> dict | None:
    from onnx2mcu.codegen.kernels import Selection, select_kernel
    from onnx2mcu.report import precision_report

    kernels = {}
    for node in graph.nodes:
        found = select_kernel(node, graph, board.kernels)
        kernels[node.name] = found.kernel.name if isinstance(found, Selection) else None
    return precision_report(graph, kernels)


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
