"""What the memory rewrites share: the `--rewrites` choice and "try, keep if lower".

The three rewrites (graph_opt/act_on_load.py, eager_accumulation.py,
partial_conv.py) change the memory model's facts (docs/ARCHITECTURE.md,
memory model): a tensor that no longer exists, an accumulator that takes
its input's bytes.  Whether that lowers the peak depends on the order the
scheduler finds, so each rewrite is applied to a copy of the graph and kept
only when `OptimizeOptions.peak_estimator` (the face passes the scheduler;
graph_opt may not import it) gives a strictly lower peak and
`OptimizeOptions.rewrite_check` (e.g. "every node has a C kernel", for
`compile`) accepts the result.  A rewrite that is not kept leaves the graph
exactly as it was and no report section, so models it does not help compile
to the same bytes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from onnx2mcu.errors import UserError
from onnx2mcu.ir import Graph, Node
from onnx2mcu.memory import profile
from onnx2mcu.rewrite import drop_unused_tensors

if TYPE_CHECKING:
    from onnx2mcu.graph_opt.context import PassContext

# the techniques in the order they run (the PASSES keys)
REWRITES = ("act_on_load", "eager_accumulation", "partial_conv", "inplace_conv")


# a kept rewrite may not raise the board's estimated instructions by more than this under
# "auto" (the default); "all" or a list keeps every rewrite that lowers the peak
MAX_SLOWDOWN = 1.02


def parse_rewrites(value: str) -> tuple[str, ...]:
    """'none' | 'auto' | 'all' | a comma-separated list of REWRITES -> the chosen ones."""
    value = (value or "none").strip()
    if value == "none":
        return ()
    if value in ("all", "auto"):
        return REWRITES
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in chosen if v not in REWRITES]
    if unknown:
        raise UserError(f"--rewrites {value}: unknown rewrite {', '.join(unknown)}; choose none, auto, all "
                        f"or a comma-separated list of {', '.join(REWRITES)}")
    return chosen


_ESTIMATES: dict[tuple, int] = {}


def estimate_peak(graph: Graph, ctx: PassContext, exact: bool = False) -> int:
    """The peak the scheduler would give (the face's estimator; with `exact`, its exact one
    when given), else the graph order's.
    Memoised on the graph's structure, shapes and attributes (a rewrite may only mark a node, as the
    int8 in-place conv does): consecutive rewrites re-ask the same graph."""
    estimator = ctx.options.peak_estimator
    if exact and ctx.options.exact_peak_estimator is not None:
        estimator = ctx.options.exact_peak_estimator
    def shapes(names) -> tuple:  # two models wired alike but of other sizes differ here
        return tuple((tuple(graph.tensors[t].shape), graph.tensors[t].dtype) for t in names if t)

    key = (id(estimator), graph.name, tuple((n.op_type, tuple(n.inputs), tuple(n.outputs),
                                             shapes(n.inputs), shapes(n.outputs),
                                             tuple(sorted((k, repr(v)) for k, v in n.attrs.items())))
                                            for n in graph.nodes))
    if key not in _ESTIMATES:
        if len(_ESTIMATES) > 64:
            _ESTIMATES.clear()
        _ESTIMATES[key] = int(estimator(graph)) if estimator is not None else profile(graph).peak_bytes
    return _ESTIMATES[key]


def _slowdown(before: Graph, after: Graph, ctx: PassContext) -> float | None:
    """after's estimated instructions over before's on the board's kernels (the face's
    `rewrite_cost`), when the speed guard applies (--rewrites auto and a cost model given)."""
    cost = ctx.options.rewrite_cost
    if cost is None or (ctx.options.rewrites or "").strip() != "auto":
        return None
    base = cost(before)
    return cost(after) / base if base > 0 else None


def snapshot(graph: Graph) -> tuple[list[Node], dict, list[str]]:
    nodes = [Node(n.name, n.op_type, list(n.inputs), list(n.outputs), dict(n.attrs), n.domain)
             for n in graph.nodes]
    return nodes, dict(graph.tensors), list(graph.outputs)


def restore(graph: Graph, saved: tuple[list[Node], dict, list[str]]) -> None:
    graph.nodes, graph.tensors, graph.outputs = saved[0], saved[1], saved[2]


def try_rewrite(key: str, graph: Graph, ctx: PassContext,
                rewrite: Callable[[Graph, PassContext], list[str]], strict: bool = False) -> dict | None:
    """Apply `rewrite` (returns where it applied) if chosen, keep it unless it raises the peak
    (with `strict`: unless it lowers it) or the check refuses it; the last technique then keeps all of them only if together they
    lower the peak (they interact: a ReLU gone on load lets a sum accumulate early)."""
    section = None
    skip = ctx.report.skip
    if key in parse_rewrites(ctx.options.rewrites):
        if "start" not in ctx.state:
            ctx.state["start"] = snapshot(graph)
            ctx.state["kept"] = []
        saved = snapshot(graph)
        before = estimate_peak(graph, ctx, exact=strict)
        where = rewrite(graph, ctx)
        if where:
            after = estimate_peak(graph, ctx, exact=strict)
            check = ctx.options.rewrite_check
            if after > before:
                skip(f"{len(where)} site(s), but the scheduled peak would rise ({before:,} -> {after:,} B)", key)
                restore(graph, saved)
            elif strict and after == before:
                skip(f"{len(where)} site(s), but the exact scheduler's peak would not drop ({before:,} B)", key)
                restore(graph, saved)
            elif check is not None and not check(graph):
                skip(f"{len(where)} site(s), but the rewritten nodes have no C kernel for the board", key)
                restore(graph, saved)
            elif (slow := _slowdown(rewritten_graph(graph, saved), graph, ctx)) is not None \
                    and slow > MAX_SLOWDOWN:
                skip(f"{len(where)} site(s) lowering the peak ({before:,} -> {after:,} B), but the board's "
                     f"kernels would run about {100 * (slow - 1):.0f}% more instructions (estimate); "
                     f"--rewrites all or --rewrites {key} keeps it", key)
                restore(graph, saved)
            else:
                section = {"applied": len(where), "where": where, "peak_before": before,
                           "peak_after": after, "saved_bytes": before - after}
                ctx.state["kept"].append(key)
        else:
            skip("no site found", key)
            restore(graph, saved)
    else:
        skip(f"off (--rewrites {ctx.options.rewrites})", key)
    if key == REWRITES[-1] and "start" in ctx.state:
        section = _finish(graph, ctx, key, section)
    return section


def _finish(graph: Graph, ctx: PassContext, key: str, section: dict | None) -> dict | None:
    """Keep the rewrites only if together they lower the peak; else restore the graph."""
    start = ctx.state.pop("start")
    kept = ctx.state.pop("kept")
    if not kept:
        return section
    now = estimate_peak(graph, ctx)
    unrewritten = rewritten_graph(graph, start)
    first = estimate_peak(unrewritten, ctx)
    slow = _slowdown(unrewritten, graph, ctx)
    if now < first and (slow is None or slow <= MAX_SLOWDOWN):
        drop_unused_tensors(graph)
        return section
    restore(graph, start)
    why = (f"together the memory rewrites did not lower the peak ({first:,} -> {now:,} B)" if now >= first else
           f"together they would run about {100 * (slow - 1):.0f}% more instructions on the board's kernels "
           f"(estimate); --rewrites all keeps them")
    for other in kept:
        ctx.report.sections.pop(other, None)
        ctx.report.skip(f"undone: {why}", other)
    return None


def rewritten_graph(graph: Graph, saved: tuple[list[Node], dict, list[str]]) -> Graph:
    return Graph(graph.name, saved[0], saved[1], list(graph.inputs), saved[2], list(graph.notes),
                 graph.source, dict(graph.scratch))


# readers that can apply an elementwise activation to their input as they load it
PROLOGUE_READERS = ("Conv", "MaxPool", "AveragePool", "Gemm")
