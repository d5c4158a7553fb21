"""The IR -> IR rewrites, run in a fixed order between the frontend and the scheduler.

Each pass is `fn(graph, options) -> dict | None`: it rewrites `graph` in
place and returns what it did for the report (None when it did nothing).
Passes that change numerics (embedding compression) run only when asked;
exact rewrites (lowering of recognised binary/adder patterns, transformer
tiling) run by default.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from onnx2mcu.ir import Graph


@dataclass
class OptimizeOptions:
    compress_embeddings: str | None = None  # "4x", "0.25" (ratio) or "500000" (bytes); None: off
    tile: str = "auto"  # "auto" | "none"
    ram_budget: int | None = None  # bytes of RAM the tiled model may use (default: the board's)


Pass = Callable[[Graph, OptimizeOptions], "dict | None"]

# (report key, pass); passes add themselves here, in the order they must run.
PASSES: list[tuple[str, Pass]] = []

from onnx2mcu.graph_opt.float_islands import expand_float_islands  # noqa: E402  (exact)
from onnx2mcu.graph_opt.quant_fuse import fuse_quantized  # noqa: E402  (exact; first)

PASSES += [("quantized_fusion", fuse_quantized), ("quantization", expand_float_islands)]
# Report keys shown by `simulate` but kept out of the compiled report.json (whose bytes
# tests/test_golden_c.py pins): the quantized/float node counts.
NOT_IN_BUILD_REPORT = frozenset({"quantization"})

from onnx2mcu.graph_opt.adder import lower_adder  # noqa: E402  (binary/adder lowering, exact)
from onnx2mcu.graph_opt.binarize import lower_binary  # noqa: E402

PASSES += [("binary", lower_binary), ("adder", lower_adder)]

from onnx2mcu.graph_opt.embedding import compress_embeddings  # noqa: E402  (MCUBERT, §5)
from onnx2mcu.graph_opt.tiling import tile_transformer  # noqa: E402

PASSES += [("embedding_compression", compress_embeddings), ("tiling", tile_transformer)]


def optimize(graph: Graph, options: OptimizeOptions | None = None) -> tuple[Graph, dict]:
    """Run every pass; returns the graph and {report key: what the pass did}."""
    options = options or OptimizeOptions()
    report: dict = {}
    for key, fn in PASSES:
        result = fn(graph, options)
        if result:
            report[key] = result
    graph.validate()
    return graph, report
