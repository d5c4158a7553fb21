"""The memory-aware scheduler against exact references on thousands of random graphs.

Random DAGs are built directly as IR graphs from registered ops (Relu and Add
run in place, MatMul does not, Reshape is an alias) plus three test-only ops of
a private domain registered for this module (one with scratch memory, one with
two outputs, one writing a smaller output over its dying input: shrinking in
place, OpDef.inplace_shrink), with random tensor sizes so that in-place sometimes applies.
References: `memory.profile` (the ground truth of live bytes) and the
exact DP over sets of scheduled ops on the unfused graph.
"""
from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnx2mcu.errors import UserError
from onnx2mcu.ir import Graph, Node, Tensor
from onnx2mcu.ops import lookup, registry
from onnx2mcu.scheduler import METHODS, schedule
from onnx2mcu.scheduler import dp
from onnx2mcu.scheduler.arena import check_plan
from onnx2mcu.scheduler.fusion import fuse, unfused
from onnx2mcu.scheduler.heuristics import SCORES, FastEval, list_schedule
from onnx2mcu.scheduler.ilp import solve_window
from onnx2mcu.memory import profile
from onnx2mcu.scheduler.problem import Problem
from onnx2mcu.scheduler.search import solve_window_search, subset_lower_bound

DOMAIN = "test.scheduler"
SIZES = (16, 32, 48, 64, 128)
MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
def fast(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module", autouse=True)
def test_ops():
    """Ops of a private domain, removed again after this module."""
    added = []
    if lookup("Scratchy", DOMAIN) is None:
        registry.register("Scratchy", lambda n, i: [i[0]], domain=DOMAIN, inplace_inputs=(0,),
                          scratch_bytes=lambda n, g: int(n.attrs.get("scratch", 0)))
        added.append((DOMAIN, "Scratchy"))
    if lookup("Shrinky", DOMAIN) is None:  # writes a smaller output over its dying input
        registry.register("Shrinky", lambda n, i: [i[0]], domain=DOMAIN, inplace_shrink=lambda n, g: (0,),
                          scratch_bytes=lambda n, g: int(n.attrs.get("scratch", 0)))
        added.append((DOMAIN, "Shrinky"))
    if lookup("Split2", DOMAIN) is None:
        registry.register("Split2", lambda n, i: [i[0], i[0]], domain=DOMAIN)
        added.append((DOMAIN, "Split2"))
    yield
    for key in added:
        registry._REGISTRY.pop(key, None)


def _alias_op() -> str | None:
    for name in ("Reshape", "Flatten", "Identity"):
        op = lookup(name)
        if op is not None and op.alias:
            return name
    return None


@st.composite
def graphs(draw, max_ops: int = 10, min_ops: int = 1):
    """A random DAG of registered ops with random sizes (bytes, multiples of 16)."""
    n_ops = draw(st.integers(min_ops, max_ops))
    tensors: dict[str, Tensor] = {}
    inputs = []
    for i in range(draw(st.integers(1, 2))):
        name = f"in{i}"
        tensors[name] = Tensor(name, (draw(st.sampled_from(SIZES)) // 4,))
        inputs.append(name)
    avail = list(inputs)
    nodes = []
    alias = _alias_op()
    kinds = ["relu", "add", "matmul", "scratch", "split", "shrink"] + (["alias"] if alias else [])
    for k in range(n_ops):
        kind = draw(st.sampled_from(kinds))
        out = f"t{k}"
        pick = st.sampled_from(avail)
        if kind == "alias":
            src = draw(pick)
            tensors[out] = Tensor(out, tensors[src].shape)
            attrs = {}
            extra = []
            if alias == "Reshape":
                shape = f"s{k}"
                tensors[shape] = Tensor(shape, (1,), data=np.array(tensors[src].shape, dtype=np.int64))
                extra = [shape]
            nodes.append(Node(f"n{k}", alias, [src] + extra, [out], attrs))
        elif kind in ("relu", "scratch"):
            src = draw(pick)
            same = draw(st.booleans())
            size = tensors[src].nbytes if same else draw(st.sampled_from(SIZES))
            tensors[out] = Tensor(out, (size // 4,))
            if kind == "relu":
                nodes.append(Node(f"n{k}", "Relu", [src], [out]))
            else:
                scratch = draw(st.sampled_from([0, 16, 48]))
                nodes.append(Node(f"n{k}", "Scratchy", [src], [out], {"scratch": scratch}, domain=DOMAIN))
        elif kind == "shrink":  # no larger than its input (sometimes equal), sometimes a scratch
            src = draw(pick)
            size = draw(st.sampled_from([s for s in SIZES if s <= tensors[src].nbytes] or [16]))
            tensors[out] = Tensor(out, (size // 4,))
            scratch = draw(st.sampled_from([0, 0, 16]))
            nodes.append(Node(f"n{k}", "Shrinky", [src], [out], {"scratch": scratch}, domain=DOMAIN))
        elif kind == "add":
            a, b = draw(pick), draw(pick)
            size = draw(st.sampled_from([tensors[a].nbytes, tensors[b].nbytes, 64]))
            tensors[out] = Tensor(out, (size // 4,))
            nodes.append(Node(f"n{k}", "Add", [a, b], [out]))
        elif kind == "matmul":
            ins = draw(st.lists(pick, min_size=1, max_size=3, unique=True))
            tensors[out] = Tensor(out, (draw(st.sampled_from(SIZES)) // 4,))
            nodes.append(Node(f"n{k}", "MatMul", ins, [out]))
        else:
            src = draw(pick)
            outs = [out + "a", out + "b"]
            for o in outs:
                tensors[o] = Tensor(o, (draw(st.sampled_from(SIZES)) // 4,))
            nodes.append(Node(f"n{k}", "Split2", [src], outs, domain=DOMAIN))
            avail.extend(outs)
            continue
        avail.append(out)
    read = {t for n in nodes for t in n.inputs}
    outputs = [t for t in avail if t not in read and t not in inputs]
    extra = draw(st.lists(st.sampled_from(avail), max_size=1))
    outputs = list(dict.fromkeys(outputs + extra)) or [avail[-1]]
    graph = Graph("random", nodes, tensors, inputs, outputs)
    graph.validate()
    return graph


def _random_topo(rng: random.Random, preds: list[set[int]]) -> list[int]:
    n = len(preds)
    done: set[int] = set()
    order = []
    while len(order) < n:
        ready = [v for v in range(n) if v not in done and preds[v] <= done]
        v = rng.choice(ready)
        order.append(v)
        done.add(v)
    return order


def _dp_optimum(graph: Graph) -> int:
    return dp.optimal(unfused(Problem(graph)))[0]


# ----- the memory model as data --------------------------------------------
@fast(300)
@given(graphs(max_ops=12), st.integers(0, 10**6))
def test_problem_and_fused_models_match_profile(graph, seed):
    rng = random.Random(seed)
    prob = Problem(graph)
    order = _random_topo(rng, prob.preds)
    assert prob.live_bytes(order) == profile(graph, prob.order_of(order)).live_bytes
    fused = fuse(prob)
    forder = _random_topo(rng, fused.preds)
    ops = fused.expand(forder)
    assert prob.is_topological(ops)
    live = profile(graph, prob.order_of(ops)).live_bytes
    expected, k = [], 0
    for v in forder:
        expected.append(max(live[k:k + len(fused.nodes[v])]))
        k += len(fused.nodes[v])
    assert fused.live_bytes(forder) == expected
    assert list(FastEval(fused).live(forder)) == expected


# ----- fusion keeps the optimum; the ILP finds it ---------------------------
@fast(500)
@given(graphs(max_ops=12))
def test_fusion_preserves_the_optimum(graph):
    prob = Problem(graph)
    best = dp.optimal(unfused(prob))[0]
    fused = fuse(prob)
    assert fused.m <= prob.n
    peak, order = dp.optimal(fused)
    assert peak == best
    assert profile(graph, prob.order_of(fused.expand(order))).peak_bytes == best
    assert fused.cut_lower_bound()[0] <= best


@fast(300)
@given(graphs(max_ops=10), st.booleans())
def test_ilp_finds_the_dp_optimum(graph, use_fusion):
    prob = Problem(graph)
    best = dp.optimal(unfused(prob))[0]
    fused = fuse(prob) if use_fusion else unfused(prob)
    start = list_schedule(fused, "grow")
    res = solve_window(fused, start, 0, fused.m, time_limit=20)
    assert res.optimal
    assert res.peak == best
    assert res.bound <= best
    assert fused.is_topological(res.order)
    assert profile(graph, prob.order_of(fused.expand(res.order))).peak_bytes == best


@fast(250)
@given(graphs(max_ops=12, min_ops=3), st.integers(0, 10**6))
def test_windows_change_only_their_steps(graph, seed):
    """A window re-ordered by the ILP or the search is optimal for the window and leaves the rest alone."""
    rng = random.Random(seed)
    fused = unfused(Problem(graph)) if seed % 2 else fuse(Problem(graph))
    if fused.m < 2:
        return
    order = _random_topo(rng, fused.preds)
    s = rng.randrange(0, fused.m - 1)
    e = rng.randrange(s + 1, fused.m + 1)
    live = fused.live_bytes(order)
    ilp = solve_window(fused, order, s, e, time_limit=20)
    new, peak, proven = solve_window_search(fused, order, s, e, time.perf_counter() + 20)
    assert ilp.optimal and proven and ilp.peak == peak <= max(live[s:e])
    for sub in (ilp.order, new):
        spliced = order[:s] + sub + order[e:]
        assert fused.is_topological(spliced)
        after = fused.live_bytes(spliced)
        assert after[:s] == live[:s] and after[e:] == live[e:]
        assert max(after[s:e]) == peak


@fast(200)
@given(graphs(max_ops=12), st.integers(0, 10**6))
def test_subset_relaxation_bounds_are_valid(graph, seed):
    """The lower bound from any run of nodes never exceeds the optimum; on the whole graph it is exact."""
    rng = random.Random(seed)
    prob = Problem(graph)
    fused = fuse(prob) if seed % 2 else unfused(prob)
    best = dp.optimal(fused)[0]
    order = _random_topo(rng, fused.preds)
    s = rng.randrange(0, fused.m)
    e = rng.randrange(s + 1, fused.m + 1)
    assert subset_lower_bound(fused, order, s, e, time.perf_counter() + 20) <= best
    whole = subset_lower_bound(fused, order, 0, fused.m, time.perf_counter() + 20)
    assert whole <= best
    if prob.unused_input_bytes == 0:
        assert whole == best


@fast(300)
@given(graphs(max_ops=12))
def test_schedule_ilp_is_optimal_and_consistent(graph):
    best = _dp_optimum(graph)
    sched = schedule(graph, "ilp", time_limit=20)
    assert sched.peak_bytes == best
    assert sched.optimal and sched.lower_bound == best
    _check_schedule(graph, sched)
    report = sched.report()
    for key in ("method", "seconds", "optimal", "lower_bound", "ops_before_fusion", "ops_after_fusion"):
        assert key in report
    assert report["ops_after_fusion"] <= report["ops_before_fusion"] == len(graph.nodes)


@fast(200)
@given(graphs(max_ops=14))
def test_greedy_and_file_order_are_valid_and_bounded(graph):
    best = _dp_optimum(graph)
    file_sched = schedule(graph, "file-order")
    greedy = schedule(graph, "greedy", time_limit=5)
    for sched in (file_sched, greedy):
        _check_schedule(graph, sched)
        assert sched.peak_bytes >= best
    assert greedy.peak_bytes <= file_sched.peak_bytes
    assert greedy.lower_bound <= best
    fused = fuse(Problem(graph))
    for score in SCORES:
        assert fused.is_topological(list_schedule(fused, score))


def _check_schedule(graph: Graph, sched) -> None:
    position = {id(node): i for i, node in enumerate(sched.order)}
    assert sorted(position.values()) == list(range(len(graph.nodes)))
    assert {id(n) for n in graph.nodes} == set(position)
    producer = {out: node for node in graph.nodes for out in node.outputs}
    for node in sched.order:
        for name in node.inputs:
            if name in producer:
                assert position[id(producer[name])] < position[id(node)]
    prof = profile(graph, sched.order)
    assert prof.live_bytes == sched.profile.live_bytes
    check_plan(sched.profile, sched.plan)
    assert sched.arena_bytes >= sched.plan.lower_bound >= 0
    for buffer in sched.profile.buffers:
        assert sched.plan.offsets[buffer.index] % 16 == 0


# ----- chains, edge cases, API ---------------------------------------------
def _chain(sizes: list[int], inplace_every: int = 0) -> Graph:
    tensors = {"x": Tensor("x", (sizes[0] // 4,))}
    nodes, prev = [], "x"
    for k, size in enumerate(sizes[1:]):
        out = f"c{k}"
        tensors[out] = Tensor(out, (size // 4,))
        op = "Relu" if inplace_every and k % inplace_every == 0 else "MatMul"
        nodes.append(Node(f"c{k}", op, [prev], [out]))
        prev = out
    return Graph("chain", nodes, tensors, ["x"], [prev])


@fast(100)
@given(st.lists(st.sampled_from(SIZES), min_size=2, max_size=30), st.integers(0, 3))
def test_chains_are_optimal_with_arena_equal_to_peak(sizes, every):
    graph = _chain(sizes, every)
    sched = schedule(graph, "ilp", time_limit=10)
    assert sched.optimal
    assert sched.peak_bytes == max(profile(graph).live_bytes)
    assert sched.arena_bytes == sched.peak_bytes
    check_plan(sched.profile, sched.plan)


def test_methods_and_errors():
    assert METHODS[0] == "ilp" and set(METHODS) == {"ilp", "greedy", "file-order"}
    with pytest.raises(UserError):
        schedule(_chain([16, 16]), "no-such-method")
    empty = Graph("empty", [], {"x": Tensor("x", (4,))}, ["x"], ["x"])
    sched = schedule(empty, "ilp")
    assert sched.order == [] and sched.peak_bytes == 0


def test_complex_net_beats_file_order():
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from nets import DARTS_V2, nas_network, randwire

    for graph in (randwire(nodes=12, channels=8), nas_network("darts", DARTS_V2, cells=3, channels=8)):
        base = schedule(graph, "file-order")
        sched = schedule(graph, "ilp", time_limit=20)
        _check_schedule(graph, sched)
        assert sched.peak_bytes <= base.peak_bytes
        assert sched.lower_bound <= sched.peak_bytes
        assert sched.stats["ops_after_fusion"] < sched.stats["ops_before_fusion"]


@pytest.mark.parametrize("name", ["mlperf_tiny/ad01_fp32.onnx", "mlperf_tiny/kws_ref_model_float32.onnx"])
def test_real_models(name):
    path = MODELS / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    from onnx2mcu.frontend import load

    graph = load(path)
    sched = schedule(graph, "ilp", time_limit=20)
    _check_schedule(graph, sched)
    assert sched.peak_bytes <= schedule(graph, "file-order").peak_bytes


def test_reordered_arena_computes_the_same_outputs():
    """The simulator runs our order in our arena (in place, shared offsets) and gets the file order's outputs."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from nets import NASNET_A, nas_network

    from onnx2mcu.simulator.execute import simulate

    graph = nas_network("nasnet_small", NASNET_A, cells=3, channels=4)
    missing = {n.op_type for n in graph.nodes if lookup(n.op_type) is None}
    if missing:
        pytest.skip(f"ops not registered yet: {sorted(missing)}")
    rng = np.random.default_rng(0)
    for tensor in graph.tensors.values():
        if tensor.data is not None and tensor.data.dtype == np.float32:
            data = rng.standard_normal(tensor.shape).astype(np.float32) * 0.3
            tensor.data = np.abs(data) + 0.5 if len(tensor.shape) == 1 else data
    x = {graph.inputs[0]: rng.standard_normal(graph.tensors[graph.inputs[0]].shape).astype(np.float32)}
    base = simulate(graph, schedule(graph, "file-order"), x)
    sched = schedule(graph, "ilp", time_limit=20)
    ours = simulate(graph, sched, x)
    assert ours.peak_bytes < base.peak_bytes
    for name in graph.outputs:
        np.testing.assert_array_equal(ours.outputs[name], base.outputs[name])
