"""The memory budget of a build: what the board leaves to the model, and whether a plan fits.

One place answers every budget question of the pipeline (docs/ARCHITECTURE.md,
memory model): graph_opt's tile sizing asks how much RAM the arena may take,
the face asks how much flash the weights may take (the rest goes to external
memory when the board has some), and whether an (arena, weights) plan fits,
with a message naming the bytes needed, the bytes available and the step at
the peak.

What counts against the board:
    RAM    arena + I/O buffers (the model's outputs, which the application keeps
           in RAM) + stack + heap
    flash  the weights kept in internal flash + an allowance for code
    ext    the weight tables moved to external memory
What does not: the test harness's compiled-in inputs (main.c's const test
vectors).  They are the harness's, not the model's: an application feeds its
own inputs.  `harness_bytes` reports them apart.
"""
from __future__ import annotations

from dataclasses import dataclass

from onnx2mcu.errors import UserError
from onnx2mcu.ir import DType, Graph
from onnx2mcu.targets import Board, get_board

DEFAULT_STACK_BYTES = 8 * 1024
# newlib-nano's stdio takes a buffer for stdout from malloc on first use (~1 KiB);
# the rest is headroom for the application.
DEFAULT_HEAP_BYTES = 4 * 1024
# flash for the kernels, startup code and the C library (newlib-nano, semihosting): the
# MLPerf Tiny models link with 20-30 KiB of code besides their weights
CODE_ALLOWANCE = 32 * 1024
# the arena planner may need a little more than the peak (alignment, gaps): tile sizing
# aims below the RAM available by this factor
FRAGMENTATION_MARGIN = 0.97


def io_bytes(graph: Graph) -> int:
    """RAM for the model's outputs, which the caller keeps outside the arena."""
    return sum(graph.tensors[n].nbytes for n in graph.outputs)


def harness_bytes(graph: Graph) -> int:
    """Flash for the harness's compiled-in test inputs (const arrays in main.c): not the model's."""
    return sum(graph.tensors[n].nbytes for n in graph.inputs)


# libm (erff, expf, tanhf...) and the float kernels of a quantized model's float islands (LayerNorm,
# Softmax): BERT-mini links with ~48 KiB of code
FLOAT_LIBRARY_ALLOWANCE = 16 * 1024


def code_allowance(graph: Graph) -> int:
    """Flash besides the weights, estimated from the graph for budgets that must leave room for
    it (--weights-budget): CODE_ALLOWANCE, the harness's test inputs, the int8 kernels'
    per-channel requantization tables (a multiplier and a shift per output channel), the weight
    blob's alignment, and libm when a quantized model computes some nodes in float.  An
    estimate: the link is the proof."""
    tables = 0
    float_ops = False
    for node in graph.nodes:
        names = [n for n in node.inputs if n]
        weights = [graph.tensors[n] for n in names[1:2] if graph.tensors[n].is_const]
        if weights and weights[0].quant is not None and weights[0].quant.axis is not None:
            tables += 8 * int(weights[0].shape[weights[0].quant.axis])
        if any(graph.tensors[n].dtype is DType.FLOAT32 and not graph.tensors[n].is_const for n in names):
            float_ops = True
    quantized = any(t.quant is not None for t in graph.tensors.values())
    padding = 8 * sum(1 for _ in graph.constants())  # the weight blob aligns every constant (codegen/weights.py)
    return (CODE_ALLOWANCE + harness_bytes(graph) + tables + padding
            + (FLOAT_LIBRARY_ALLOWANCE if quantized and float_ops else 0))


@dataclass(frozen=True)
class Need:
    """What a planned model needs from the board."""
    arena_bytes: int
    io_bytes: int
    weights_bytes: int  # in internal flash
    external_bytes: int = 0  # weight tables in external memory
    peak_step: int | None = None
    peak_node: str | None = None
    peak_op: str | None = None


@dataclass(frozen=True)
class Fit:
    """The answer to "does it fit": one line per memory that overflows."""
    board: str
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self, source: str) -> str:
        return (f"{source}: does not fit {self.board}: " + "; ".join(self.problems) +
                "; pick a bigger board or pass --force to emit anyway")


@dataclass(frozen=True)
class MemoryBudget:
    """A board's memories less what the program around the model takes.

    `None` for a memory means unlimited (the host).  `model_ram_bytes` is the
    user's `--ram-budget`: RAM for the arena and the I/O buffers, in place of
    RAM - stack - heap; it steers tile sizing only, the fit check is always
    against the board.
    """
    board: str = "host"
    ram_bytes: int | None = None
    flash_bytes: int | None = None
    ext_bytes: int | None = None
    stack_bytes: int = DEFAULT_STACK_BYTES
    heap_bytes: int = DEFAULT_HEAP_BYTES
    code_bytes: int = CODE_ALLOWANCE
    model_ram_bytes: int | None = None
    fragmentation_margin: float = FRAGMENTATION_MARGIN

    @classmethod
    def for_board(cls, board: "Board | str | None", ram_budget: int | None = None,
                  stack_bytes: int = DEFAULT_STACK_BYTES,
                  heap_bytes: int = DEFAULT_HEAP_BYTES) -> "MemoryBudget":
        """The budget of `board` (None or "host": no limits), optionally capped by `--ram-budget`."""
        if board is None:
            return cls(model_ram_bytes=ram_budget, stack_bytes=stack_bytes, heap_bytes=heap_bytes)
        board = get_board(board)
        if board.is_host:
            return cls(board.name, model_ram_bytes=ram_budget, stack_bytes=stack_bytes,
                       heap_bytes=heap_bytes)
        return cls(board.name, board.ram_bytes, board.flash_bytes, board.ext_bytes,
                   stack_bytes=stack_bytes, heap_bytes=heap_bytes, model_ram_bytes=ram_budget)

    # ----- the questions -------------------------------------------------------------------
    def model_ram(self) -> int | None:
        """RAM for the arena and the I/O buffers: `--ram-budget`, else RAM - stack - heap."""
        if self.model_ram_bytes is not None:
            return self.model_ram_bytes
        if self.ram_bytes is None:
            return None
        return self.ram_bytes - self.stack_bytes - self.heap_bytes

    def ram_for_arena(self, io: int) -> int | None:
        """RAM the arena may take, given `io` bytes of I/O buffers (None: unlimited)."""
        model = self.model_ram()
        return None if model is None else model - io

    def arena_target(self, io: int) -> int | None:
        """The peak tile sizing aims at: the arena's RAM less room for fragmentation."""
        ram = self.ram_for_arena(io)
        return None if ram is None else int(ram * self.fragmentation_margin)

    def flash_for_weights(self) -> int | None:
        """Internal flash the weights may take (None: unlimited)."""
        return None if self.flash_bytes is None else self.flash_bytes - self.code_bytes

    @property
    def has_external(self) -> bool:
        """Weights that do not fit the flash can go to external memory."""
        return self.ext_bytes is not None and self.flash_bytes is not None

    def fit(self, need: Need) -> Fit:
        """Does the plan fit the board?  Nothing is checked for a board without a RAM size."""
        if self.ram_bytes is None:
            return Fit(self.board)
        problems = []
        ram_needed = need.arena_bytes + self.stack_bytes + self.heap_bytes + need.io_bytes
        if ram_needed > self.ram_bytes:
            where = (f" (peak at step {need.peak_step}: {need.peak_node}, {need.peak_op})"
                     if need.peak_node else "")
            problems.append(f"RAM: needs {ram_needed} B (arena {need.arena_bytes}{where} + stack "
                            f"{self.stack_bytes} + heap {self.heap_bytes} + I/O buffers {need.io_bytes}) "
                            f"but {self.board} has {self.ram_bytes} B")
        flash_needed = need.weights_bytes + self.code_bytes
        if self.flash_bytes is not None and flash_needed > self.flash_bytes:
            problems.append(f"flash: needs about {flash_needed} B (weights {need.weights_bytes} + "
                            f"~{self.code_bytes} for code) but {self.board} has {self.flash_bytes} B")
        if self.ext_bytes is not None and need.external_bytes > self.ext_bytes:
            problems.append(f"external memory: {need.external_bytes} B of weight tables but {self.board} "
                            f"has {self.ext_bytes} B")
        return Fit(self.board, tuple(problems))

    def check(self, need: Need, source: str) -> None:
        """UserError (one line: what overflows, by how much, where the peak is) unless it fits."""
        fit = self.fit(need)
        if not fit.ok:
            raise UserError(fit.message(source))

    def summary(self, io: int) -> dict:
        """JSON-friendly: the budget the build was checked against."""
        return {"ram_bytes": self.ram_bytes, "ram_budget": self.model_ram_bytes, "flash_bytes": self.flash_bytes, "ext_bytes": self.ext_bytes,
                "stack_bytes": self.stack_bytes, "heap_bytes": self.heap_bytes, "io_bytes": io,
                "code_bytes": self.code_bytes, "ram_for_arena": self.ram_for_arena(io),
                "flash_for_weights": self.flash_for_weights()}
