"""The pipeline driver: one `run(model, options)` behind every command and the Python API.

    load -> graph_opt -> [select kernels] -> schedule -> [simulate] -> [codegen]

`Options` holds every option of the command line, so `onnx2mcu simulate`,
`compile` and `check`, `onnx2mcu.simulate()` and `onnx2mcu.compile()` are
the same pipeline with the same defaults (docs/ARCHITECTURE.md, the face).
The board's `MemoryBudget` (onnx2mcu/budget.py) is made once here and
answers graph_opt's tile sizing and codegen's fit check alike.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from onnx2mcu.budget import DEFAULT_HEAP_BYTES, DEFAULT_STACK_BYTES, MemoryBudget
from onnx2mcu.errors import UserError
from onnx2mcu.ir import Graph
from onnx2mcu.scheduler import METHODS
from onnx2mcu.targets import Board, get_board

if TYPE_CHECKING:
    from onnx2mcu.project import CompileResult
    from onnx2mcu.scheduler import Schedule
    from onnx2mcu.simulator import SimResult
    from onnx2mcu.simulator.compare import Agreement, Tolerance

STOP_AFTER = ("load", "optimize", "schedule")


@dataclass
class Options:
    """Every option of `onnx2mcu simulate / compile / check` (same names, same defaults)."""
    # the model
    input_shapes: Mapping[str, Sequence[int]] | None = None  # --input-shape NAME=D0,D1,...
    # int8: "fixed" (TFLite's integer requantization, bit-exact with TFLite Micro) or "float"
    # (onnxruntime's float32 rescale); --requant
    requant: str = "fixed"
    input_values: Mapping[str, float] | None = None  # --input-value NAME=VALUE (scalar -> constant)
    # graph_opt
    compress_embeddings: str | None = None  # --compress-embeddings "4x" | "0.25" | "500000"
    token_frequencies: str | None = None  # --token-frequencies FILE (.npy, or text counts)
    calibration_text: str | None = None  # --calibration-text FILE (with --tokenizer PATH)
    tokenizer: str | None = None  # --tokenizer PATH (transformers tokenizer folder)
    weights_budget: str | int | None = None  # --weights-budget BYTES | board: whole flash image
    embeddings_int8: bool = False  # --embeddings-int8: int8 embedding factors (lossy, opt-in)
    tile: str = "auto"  # --tile auto | none
    binary_sign_zero: str = "exact"  # --binary-sign-zero exact | plus-one (opt-in, changes results)
    ram_budget: int | None = None  # --ram-budget: RAM for arena + I/O (default: the board's)
    # --rewrites none | auto | all | LIST: memory rewrites, each kept only if it lowers the peak (auto:
    # and does not raise the board's estimated instructions by more than 2%)
    rewrites: str = "auto"
    patch: str = "none"  # --patch none | auto: int8 conv chains patch by patch (graph_opt/patch.py)
    int8_io: bool = False  # --int8-io: float I/O quantized at the edges taken and given as int8 (graph_opt/int8_io.py)
    # the target
    board: str | Board = "host"  # --board
    stack_bytes: int = DEFAULT_STACK_BYTES
    heap_bytes: int = DEFAULT_HEAP_BYTES
    # scheduling
    scheduler: str = METHODS[0]  # --scheduler ilp | greedy | file-order
    time_limit: float = 60.0  # --time-limit, seconds
    # test inputs: arrays, an .npz path (--inputs), or None for seeded random ones (--seed)
    inputs: Mapping[str, np.ndarray] | str | os.PathLike | None = None
    seed: int = 0
    # simulate
    simulate: bool = False  # run the simulator over the planned arena
    check_onnxruntime: bool = True  # and compare with onnxruntime (--no-check: False)
    max_tensor_bytes: int | None = None  # --max-tensor-bytes (None: 1 GiB or the board's largest memory)
    tolerance: "Tolerance | None" = None  # --atol/--rtol/--int8-tolerance (None: the defaults)
    plot: str | os.PathLike | None = None  # --plot PNG of live bytes per step (needs simulate)
    plot_layout: str | os.PathLike | None = None  # --plot-layout PNG of the arena: buffers over steps
    progress: Callable[[int], None] | None = None  # called with each simulated step
    # codegen
    output: str | os.PathLike | None = None  # -o: write the C project here (None: no codegen)
    prefix: str = "model"  # --prefix of the C names
    format: str = "project"  # --format project | library | cmake | zephyr (codegen/formats.py)
    io: str = "semihosting"  # --io semihosting | rtt: how the harness reports its outputs
    force: bool = False  # --force: emit even if the model does not fit the board
    # partial runs (`inspect` stops after "load" and keeps unsupported ops)
    stop_after: str | None = None  # "load" | "optimize" | "schedule" | None (all asked stages)
    check_supported: bool = True  # frontend: refuse ops without a reference


@dataclass
class SimulationReport:
    """The simulator's run of a schedule, and how it agrees with onnxruntime."""
    graph: Graph
    schedule: "Schedule"
    result: "SimResult"
    inputs: dict[str, np.ndarray]
    agreement: "Agreement | None"

    @property
    def peak_bytes(self) -> int:
        return self.result.peak_bytes

    @property
    def max_rel_err(self) -> float | None:
        return None if self.agreement is None else self.agreement.max_rel_err

    @property
    def max_scaled_err(self) -> float | None:
        """max |ours - reference| / max |reference| (worst output): the error figure that does
        not explode on tiny outputs (simulator/compare.py)."""
        return None if self.agreement is None else self.agreement.max_scaled_err

    def to_dict(self) -> dict:
        from onnx2mcu.report import simulation_report

        return simulation_report(self)


@dataclass
class PipelineResult:
    model: object  # what was given: a path or an onnx.ModelProto
    graph: Graph
    board: Board
    budget: MemoryBudget
    optimization: dict = field(default_factory=dict)  # what graph_opt did, by pass
    schedule: "Schedule | None" = None
    inputs: dict[str, np.ndarray] | None = None
    simulation: SimulationReport | None = None
    compiled: "CompileResult | None" = None
    options: Options | None = None  # what was asked (the text report names the options)


def reference_options(options: Options, budget: MemoryBudget) -> dict:
    """The options that change the model's results (opt-in, lossy), as the simulator takes them
    again: paths made absolute, --weights-budget in bytes.  Empty when none is given."""
    from onnx2mcu.graph_opt.embedding import parse_weights_budget

    found: dict = {}
    if options.compress_embeddings is not None:
        found["compress_embeddings"] = str(options.compress_embeddings)
    if options.weights_budget is not None:
        found["weights_budget"] = parse_weights_budget(options.weights_budget, budget.flash_bytes)
    if found and options.embeddings_int8:
        found["embeddings_int8"] = True
    for key in ("token_frequencies", "calibration_text", "tokenizer"):
        value = getattr(options, key)
        if found and value is not None:
            found[key] = os.path.abspath(value)
    if options.binary_sign_zero != "exact":
        found["binary_sign_zero"] = options.binary_sign_zero
    return found


def run(model, options: Options | None = None, *, graph: Graph | None = None,
        optimization: dict | None = None) -> PipelineResult:
    """Run the stages `options` ask for.  `graph` (already loaded and optimized, e.g. by a
    benchmark that edits it) skips load and graph_opt; `optimization` is then what graph_opt did."""
    options = options or Options()
    if options.stop_after not in (None, *STOP_AFTER):
        raise UserError(f"stop_after '{options.stop_after}': choose one of {', '.join(STOP_AFTER)}")
    board = get_board(options.board)
    from onnx2mcu.frontend import validate

    validate.configure(options.max_tensor_bytes if options.max_tensor_bytes is not None
                       else validate.board_tensor_limit(board))
    budget = MemoryBudget.for_board(board, options.ram_budget, options.stack_bytes, options.heap_bytes)
    if graph is None:
        from onnx2mcu.frontend import load

        graph = load(model, options.input_shapes, check=options.check_supported,
                     input_values=options.input_values)
        graph.requant = _requant_mode(options.requant)
        result = PipelineResult(model, graph, board, budget, options=options)
        if options.stop_after == "load":
            return result
        from onnx2mcu.graph_opt import OptimizeOptions, optimize
        from onnx2mcu.graph_opt.embedding import parse_weights_budget

        estimator, exact_estimator = _peak_estimator(options), _peak_estimator(options, exact=True)
        graph, result.optimization = optimize(graph, OptimizeOptions(
            compress_embeddings=options.compress_embeddings, tile=options.tile,
            token_frequencies=options.token_frequencies, calibration_text=options.calibration_text,
            tokenizer=options.tokenizer,
            weights_budget=parse_weights_budget(options.weights_budget, budget.flash_bytes),
            embedding_int8=options.embeddings_int8,
            binary_sign_zero=options.binary_sign_zero,
            ram_budget=budget.model_ram(), rewrites=options.rewrites, patch=options.patch, int8_io=options.int8_io,
            patch_ram=_patch_ram(graph, budget),
            peak_estimator=estimator,
            exact_peak_estimator=exact_estimator,
            # a compile, or a simulate for a board, keeps only rewrites the board's C can run:
            # both then plan the same graph (docs/ARCHITECTURE.md, memory model and budget)
            rewrite_check=_c_check(board) if options.output is not None or not board.is_host else None,
            # only a board with fast kernels can be slowed by a rewrite's portable fused kernel
            rewrite_cost=_instruction_estimate(board) if set(board.kernels) - {"portable"} else None))
        hits = estimator.deadline_hits + exact_estimator.deadline_hits  # type: ignore[attr-defined]
        if hits:
            result.optimization.setdefault("optimize_notes", []).append(
                f"the memory rewrites' peak estimator reached its time limit on {hits} graph(s): "
                f"which rewrites were kept may depend on this machine's speed")
    else:
        graph.requant = _requant_mode(options.requant)
        result = PipelineResult(model, graph, board, budget, dict(optimization or {}), options=options)

    # ----- select kernels: after the IR rewrites, before scheduling (a kernel's scratch is
    # part of the memory plan); a compile refuses nodes no C kernel runs, all listed at once
    from onnx2mcu.codegen.kernels import select_kernels

    if options.output is not None:
        from onnx2mcu.codegen.generate import c_support, raise_unsupported
        from onnx2mcu.frontend.validate import validate_for_codegen, validate_harness

        # what the generated C could not build or run is refused before codegen
        validate_for_codegen(graph, graph.source)
        validate_harness(graph, graph.source, board)

        problems = c_support(graph, board)
        if problems:
            raise_unsupported(graph, problems)
    select_kernels(graph, board)
    if options.stop_after == "optimize":
        return result

    values = _given_inputs(options.inputs, graph)  # a bad .npz fails before a long schedule
    from onnx2mcu.scheduler import schedule

    result.schedule = _schedule(graph, board, options)
    if options.stop_after == "schedule":
        return result
    if values is None:
        from onnx2mcu.simulator.compare import seeded_inputs

        values = seeded_inputs(graph, options.seed)
    result.inputs = values
    if options.simulate:
        result.simulation = _simulate(model, graph, result.schedule, values, options,
                                      (result.optimization or {}).get("int8_io"))
        if options.plot or options.plot_layout:
            _plot(result, options)
    if options.output is not None:
        from onnx2mcu.project import emit_project

        lossy = reference_options(options, budget)
        if lossy:  # `onnx2mcu run` re-simulates with them: the model file alone is not the reference
            result.optimization = {**(result.optimization or {}), "reference_options": lossy}

        result.compiled = emit_project(model, options.output, graph, result.schedule, board, budget,
                                       values, prefix=options.prefix, force=options.force,
                                       fmt=options.format, io=options.io,
                                       optimization=result.optimization)
    return result


def _schedule(graph: Graph, board: Board, options: Options):
    """Schedule; then every node whose step, with its kernel's scratch, holds more live bytes
    than the schedule's peak without any kernel scratch is put in Graph.scratch_free, its
    kernel re-selected in its scratch-free form, and the graph scheduled again, until no
    scratch raises the peak.  Fast kernels thus take scratch only where the arena has room
    for it (docs/ARCHITECTURE.md, kernels).  Ends: scratch_free only grows, and a round that
    adds no node leaves the kernels (and so the schedule) as they are."""
    from onnx2mcu.codegen.kernels import select_kernels
    from onnx2mcu.memory import profile
    from onnx2mcu.scheduler import schedule

    while True:
        sched = schedule(graph, options.scheduler, time_limit=options.time_limit)
        with_scratch = profile(graph, sched.order).live_bytes
        kept = dict(graph.scratch)
        graph.scratch.update({name: 0 for name in kept})
        bare_peak = profile(graph, sched.order).peak_bytes  # the same order, no kernel scratch
        graph.scratch.update(kept)
        raising = {node.name for node, live in zip(sched.order, with_scratch)
                   if kept.get(node.name, 0) > 0 and live > bare_peak}
        if raising <= graph.scratch_free:
            return sched
        graph.scratch_free |= raising
        before = dict(graph.scratch)
        select_kernels(graph, board)
        if graph.scratch == before:  # no kernel had a scratch-free form: the schedule stands
            return sched


def _patch_ram(graph: Graph, budget: MemoryBudget) -> int | None:
    """The arena bytes an explicit --ram-budget leaves, for --patch auto (graph_opt/patch.py)."""
    if budget.model_ram_bytes is None:
        return None
    from onnx2mcu.budget import io_bytes

    return budget.ram_for_arena(io_bytes(graph))


def _requant_mode(mode: str) -> str:
    from onnx2mcu.qmath import REQUANT_MODES

    if mode not in REQUANT_MODES:
        raise UserError(f"requant mode '{mode}': choose one of {', '.join(REQUANT_MODES)}")
    return mode


def _peak_estimator(options: Options, exact: bool = False) -> Callable[[Graph], int]:
    """The scheduler's peak for a candidate graph (graph_opt/memrw.py keeps a memory rewrite
    only when it lowers this): the heuristic bounded by work, not time (scheduler.optimize.
    estimate: the same graph gives the same answer on any machine load, so the kept rewrites
    and the compiled model do not depend on it; `estimate.deadline_hits` counts the graphs
    on which its safety time limit was reached); with `exact`: the scheduler's exact method,
    when it is the one asked for, on a short time limit (deterministic when it proves its
    optimum, which `deadline_hits` counts otherwise); the file order for `file-order`."""
    def estimate(graph: Graph) -> int:
        from onnx2mcu.memory import profile

        if options.scheduler == "file-order":
            return profile(graph).peak_bytes
        from onnx2mcu.scheduler.optimize import estimate as work_bounded, optimize

        if exact and options.scheduler == "ilp":
            outcome = optimize(graph, "ilp", min(10.0, max(options.time_limit * 0.1, 0.1)))
            if not outcome.optimal:  # stopped by its time limit, not by a proof
                estimate.deadline_hits += 1  # type: ignore[attr-defined]
            return outcome.peak
        outcome = work_bounded(graph)
        if outcome.stats.get("heuristic_deadline_hit"):
            estimate.deadline_hits += 1  # type: ignore[attr-defined]
        return outcome.peak
    estimate.deadline_hits = 0  # type: ignore[attr-defined]
    return estimate


def _instruction_estimate(board: Board) -> Callable[[Graph], float]:
    """Estimated instructions of a graph on the board's kernels (onnx2mcu.latency's per-backend
    figures): what the memory rewrites' speed guard compares (a fused kernel that only has a
    portable form can be slower than the board's fast kernels it replaces)."""
    def estimate(graph: Graph) -> float:
        from onnx2mcu.codegen.kernels import c_support
        from onnx2mcu.latency import instructions_of

        return instructions_of(graph, c_support(graph, board, tolerant=True))
    return estimate


def _c_check(board: Board) -> Callable[[Graph], bool]:
    """For `compile`: a rewritten graph is acceptable only if every node has a C kernel."""
    def check(graph: Graph) -> bool:
        from onnx2mcu.codegen.generate import c_support

        return not c_support(graph, board)
    return check


def _given_inputs(inputs, graph: Graph) -> dict[str, np.ndarray] | None:
    if inputs is None:
        return None
    if isinstance(inputs, (str, os.PathLike)):
        from onnx2mcu.simulator.compare import load_npz

        return load_npz(str(inputs), graph)
    return dict(inputs)


def _simulate(model, graph: Graph, sched: "Schedule", values: dict[str, np.ndarray],
              options: Options, int8_io: dict | None = None) -> SimulationReport:
    """Run over the planned arena; compare with onnxruntime when it can load the model (with
    --int8-io: onnxruntime takes the dequantized int8 inputs, which its QuantizeLinear maps back
    to the same integers, and our int8 outputs are compared dequantized)."""
    import onnx

    from onnx2mcu.frontend.load import read_model
    from onnx2mcu.simulator import simulate
    from onnx2mcu.simulator.compare import compare, run_onnxruntime

    sim = simulate(graph, sched, values, progress=options.progress)
    agreement = None
    check = options.check_onnxruntime
    proto = None
    if check:
        proto = model if isinstance(model, onnx.ModelProto) else read_model(model)[0]
        if {n.domain for n in proto.graph.node} - {"", "ai.onnx"}:
            check = False  # onnxruntime cannot load our custom-domain ops
    if check:
        from onnx2mcu.frontend.control_flow import input_value_feed  # the bound inputs, for ort

        feed = {**values, **input_value_feed(proto, options.input_values)}
        ours, names = sim.outputs, graph.outputs
        if int8_io:
            def real(q: np.ndarray, moved: dict) -> np.ndarray:  # the tensor's scale and zero point
                return ((q.astype(np.float32) - moved["zero_point"]) * np.float32(moved["scale"])).astype(np.float32)

            for moved in int8_io["inputs"]:
                feed[moved["was"]] = real(feed.pop(moved["now"]), moved)
            back = {m["now"]: m for m in int8_io["outputs"]}
            ours = {back[n]["was"] if n in back else n: real(v, back[n]) if n in back else v
                    for n, v in sim.outputs.items()}
            names = [back[n]["was"] if n in back else n for n in graph.outputs]
        agreement = compare(ours, run_onnxruntime(proto, feed, names), options.tolerance)
        if _integer_fixed(graph):
            agreement.binding = False
            agreement.note = FIXED_VS_ONNXRUNTIME
    return SimulationReport(graph, sched, sim, values, agreement)


FIXED_VS_ONNXRUNTIME = (
    "int8 under --requant fixed follows TFLite's integer arithmetic, onnxruntime requantizes in float: "
    "differences of a few LSB are expected and not a failure (docs/ARCHITECTURE.md, numerics); "
    "--requant float compares with onnxruntime's arithmetic")


def _integer_fixed(graph: Graph) -> bool:
    """Whether some node computes on int8 with TFLite's fixed-point requantization."""
    if getattr(graph, "requant", "fixed") != "fixed":
        return False
    from onnx2mcu.ops.int8 import int8_params

    return any(int8_params(node, graph) is not None for node in graph.nodes)


def ram_mark(graph: Graph, budget: MemoryBudget, board: Board) -> dict | None:
    """What the plots mark as the board's RAM: the bytes the arena may take (RAM - stack - heap -
    I/O buffers, or --ram-budget - I/O), None without a limit (the host)."""
    from onnx2mcu.budget import io_bytes

    ram = budget.ram_for_arena(io_bytes(graph))
    if ram is None:
        return None
    if budget.model_ram_bytes is not None:
        return {"bytes": ram, "label": "--ram-budget less I/O buffers"}
    return {"bytes": ram, "label": f"{board.name} RAM for the arena ({budget.ram_bytes / 1024:g} KiB - stack - "
                                   "heap - I/O)"}


def _plot(result: PipelineResult, options: Options) -> None:
    from onnx2mcu.simulator.plot import plot_layout, plot_memory

    data = result.simulation.to_dict()
    ram = ram_mark(result.graph, result.budget, result.board)
    if options.plot:
        plot_memory(data, str(options.plot), ram)
    if options.plot_layout:
        plot_layout(data, str(options.plot_layout), ram)
