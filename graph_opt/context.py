"""The pass contract (docs/ARCHITECTURE.md, passes): what a graph_opt pass gets and returns.

A pass is `fn(graph, ctx: PassContext) -> dict | None`; graph_opt/pipeline.py
orders and runs them.  Kept apart from the pipeline so that the passes, which
the pipeline imports, do not import the pipeline back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from onnx2mcu.errors import UserError
from onnx2mcu.ir import Graph
from onnx2mcu.rewrite import FreshNames

SIGN_ZERO_MAPPINGS = ("exact", "plus-one")


@dataclass
class OptimizeOptions:
    compress_embeddings: str | None = None  # "4x", "0.25" (ratio) or "500000" (bytes); None: off
    # frequency-aware embedding compression (graph_opt/embedding.py): counts per token id
    # (.npy / text), or a calibration text counted with a transformers tokenizer folder
    token_frequencies: str | None = None
    calibration_text: str | None = None
    tokenizer: str | None = None
    # bytes of flash for the whole model (weights + code allowance): the embedding tables are
    # compressed until it fits (--weights-budget; the face resolves "board")
    weights_budget: int | None = None
    embedding_int8: bool = False  # --embeddings-int8: int8 factors (lossy, opt-in)
    tile: str = "auto"  # "auto" | "none"
    ram_budget: int | None = None  # bytes of RAM the tiled model may use (default: the board's)
    # binary layers from ONNX Sign: "exact" keeps Sign(0) = 0; "plus-one" maps 0 to +1 (faster,
    # differs from ONNX where an input is exactly 0; opt-in and reported)
    binary_sign_zero: str = "exact"
    # memory rewrites (graph_opt/memrw.py): "none" | "auto" | "all" | a comma-separated list; each
    # is kept only where `peak_estimator` says the peak drops and `rewrite_check` accepts it, and
    # under "auto" only if `rewrite_cost` (estimated instructions on the board) rises <= 2%
    rewrites: str = "auto"
    peak_estimator: Callable[[Graph], int] | None = None  # the face passes the scheduler's
    # the scheduler's exact method (slower): decides rewrites whose gain the heuristic misses
    exact_peak_estimator: Callable[[Graph], int] | None = None
    rewrite_check: Callable[[Graph], bool] | None = None  # e.g. "every node has a C kernel"
    rewrite_cost: Callable[[Graph], float] | None = None  # estimated instructions on the board
    # patch-based inference of int8 conv chains (graph_opt/patch.py): "none" | "auto"
    patch: str = "none"
    # --int8-io: the edge QuantizeLinear/DequantizeLinear of float graph I/O run outside, the C API
    # takes and gives the int8 tensors (graph_opt/int8_io.py)
    int8_io: bool = False
    # the arena bytes an explicit --ram-budget leaves (less the I/O buffers), None without one:
    # --patch auto then takes the fewest extra MACs that fit it
    patch_ram: int | None = None

    def __post_init__(self) -> None:
        if self.binary_sign_zero not in SIGN_ZERO_MAPPINGS:
            raise UserError(f"--binary-sign-zero {self.binary_sign_zero}: choose "
                            + " or ".join(SIGN_ZERO_MAPPINGS))
        from onnx2mcu.graph_opt.memrw import parse_rewrites

        if self.patch not in ("none", "auto"):
            raise UserError(f"--patch {self.patch}: choose none or auto")
        parse_rewrites(self.rewrites)  # a bad list fails here, with one clear line


@dataclass
class PassReport:
    """The report sink: one section per pass (what it returned) and notes for the user."""

    sections: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # pass key -> why it changed nothing (the text report prints it: "not applied: ...")
    not_applied: dict[str, str] = field(default_factory=dict)
    pending_reason: str | None = None
    # pass key -> (the graph's MACs before, after) for the passes that changed it (run_pass)
    macs: dict[str, tuple[int, int]] = field(default_factory=dict)

    def note(self, text: str) -> None:
        """Something the user must know, e.g. that an opt-in rewrite changed results."""
        self.notes.append(text)

    def skip(self, reason: str, key: str | None = None) -> None:
        """Why a pass leaves the graph as it is; `key` None: the pass now running (run_pass
        files it under the pass's key when the pass returns nothing)."""
        if key is None:
            self.pending_reason = reason
        else:
            self.not_applied[key] = reason

    def to_dict(self) -> dict:
        """{pass key: section, ...}, plus "optimize_notes" when a pass left notes and
        "not_applied" ({pass key: why}) for the passes that changed nothing and said why."""
        out = dict(self.sections)
        if self.notes:
            out["optimize_notes"] = list(self.notes)
        if self.not_applied:
            out["not_applied"] = dict(self.not_applied)
        kept = {key: {"before": b, "after": a} for key, (b, a) in self.macs.items() if key in self.sections}
        if kept:
            out["macs_by_pass"] = kept
        return out


@dataclass
class PassContext:
    """What a pass gets besides the graph."""

    options: OptimizeOptions
    report: PassReport
    names: FreshNames
    # state shared by consecutive passes of one run (graph_opt/memrw.py: the graph before them)
    state: dict = field(default_factory=dict)

    @classmethod
    def for_graph(cls, graph: Graph, options: OptimizeOptions | None = None) -> "PassContext":
        return cls(options or OptimizeOptions(), PassReport(), FreshNames(graph))


Pass = Callable[[Graph, PassContext], "dict | None"]
