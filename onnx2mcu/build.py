"""`compile` from code: model -> a C project folder, through the pipeline (onnx2mcu/pipeline.py).

The codegen step itself is onnx2mcu/project.py; its names are re-exported here for callers
that know them from this module."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from onnx2mcu.ir import Graph
from onnx2mcu.project import (SOURCE_MODEL, TEST_INPUTS, CompileResult, build_report,  # noqa: F401
                              emit_project, external_weights_for, need_of, rtt_bytes_for)
from onnx2mcu.targets import Board


def compile_model(model, out_dir: str | os.PathLike, board: str | Board = "host",
                  input_shapes: Mapping[str, Sequence[int]] | None = None,
                  inputs: Mapping[str, np.ndarray] | None = None, scheduler: str | None = None,
                  time_limit: float = 60.0, force: bool = False, prefix: str = "model",
                  seed: int = 0, graph: Graph | None = None,
                  optimization: dict | None = None, fmt: str = "project", io: str = "semihosting",
                  **options) -> CompileResult:
    """`onnx2mcu compile` from code: the pipeline (onnx2mcu/pipeline.py) with an output folder.

    `graph` (already loaded and optimized) skips loading and graph_opt; `optimization` is
    then what graph_opt did.  `options` are the other fields of `pipeline.Options`."""
    from onnx2mcu import pipeline

    opts = pipeline.Options(board=board, input_shapes=input_shapes, inputs=inputs,
                            scheduler=scheduler or pipeline.Options.scheduler, time_limit=time_limit,
                            force=force, prefix=prefix, seed=seed, output=out_dir, format=fmt, io=io,
                            **options)
    return pipeline.run(model, opts, graph=graph, optimization=optimization).compiled
