"""The Python API: what the CLI does, callable from code, with every option the CLI has.

    import onnx2mcu
    report = onnx2mcu.simulate("model.onnx", input_shapes={"x": (1, 49, 10, 1)})
    print(report.peak_bytes, report.max_rel_err)
    result = onnx2mcu.compile("model.onnx", "out/", board="nucleo-f746zg", scheduler="greedy")

Both run `onnx2mcu.pipeline.run`; the keyword arguments are the fields of
`pipeline.Options` (the CLI's options: input_shapes, compress_embeddings,
tile, ram_budget, board, scheduler, time_limit, inputs, seed, force, prefix, ...).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping, Sequence

from onnx2mcu import pipeline
from onnx2mcu.ir import Graph
from onnx2mcu.pipeline import Options, PipelineResult, SimulationReport

if TYPE_CHECKING:
    from onnx2mcu.project import CompileResult

__all__ = ["load", "simulate", "compile", "run", "Options", "PipelineResult", "SimulationReport"]


def load(model, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    """ONNX file or ModelProto -> IR with static shapes and constants folded."""
    from onnx2mcu.frontend import load as _load

    return _load(model, input_shapes)


def run(model, **options) -> PipelineResult:
    """The whole pipeline with `pipeline.Options(**options)`."""
    return pipeline.run(model, Options(**options))


def simulate(model, graph: Graph | None = None, optimization: dict | None = None,
             **options) -> SimulationReport:
    """Schedule, run in the simulator over the planned arena, and compare with onnxruntime.

    `options`: the fields of `pipeline.Options` (as `onnx2mcu simulate` has them, plus board:
    its RAM then sizes the tiles as in `compile`).  `graph` (already loaded and optimized)
    skips load and graph_opt."""
    return pipeline.run(model, Options(simulate=True, **options), graph=graph,
                        optimization=optimization).simulation


def compile(model, output: str | os.PathLike, graph: Graph | None = None, optimization: dict | None = None,
            **options) -> "CompileResult":  # noqa: A001 (the CLI command's name)
    """Write the C project for `model` into `output` (as `onnx2mcu compile -o output`)."""
    return pipeline.run(model, Options(output=output, **options), graph=graph,
                        optimization=optimization).compiled
