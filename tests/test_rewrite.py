"""The rewrite toolkit (onnx2mcu/rewrite.py) and the pass contract (graph_opt/pipeline.py)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from onnx2mcu.graph_opt import pipeline
from onnx2mcu.graph_opt.binarize import never_zero
from onnx2mcu.graph_opt.pipeline import OptimizeOptions, PassContext, optimize
from onnx2mcu.ir import DType, Graph, GraphError, Node, Tensor
from onnx2mcu.rewrite import (FreshNames, Rewriter, affine_consumer, as_projection, bias_add,
                              channel_vector, is_closed, is_topological, live_nodes, projection,
                              remove_dead, run_index_ops, same_layout, scalar)

F = DType.FLOAT32


def graph_of(nodes, tensors, inputs, outputs) -> Graph:
    table = {}
    for name, shape, *data in tensors:
        value = np.asarray(data[0], dtype=np.float32) if data else None
        table[name] = Tensor(name, tuple(shape), F, value)
    return Graph("g", list(nodes), table, list(inputs), list(outputs))


def chain_graph() -> Graph:
    """x -> Relu a -> Neg b -> y, plus a dead branch a -> Abs d (and d's unused constant c)."""
    return graph_of(
        [Node("relu", "Relu", ["x"], ["a"]), Node("abs", "Abs", ["a"], ["d"]),
         Node("neg", "Neg", ["a"], ["y"]), Node("add", "Add", ["d", "c"], ["e"])],
        [("x", (2, 3)), ("a", (2, 3)), ("d", (2, 3)), ("y", (2, 3)), ("e", (2, 3)),
         ("c", (1,), [1.0]), ("unused", (1,), [2.0])],
        ["x"], ["y"])


# ----- fresh names ---------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["tensor", "node", "add_tensor", "add_node", "drop"]),
                          st.sampled_from(["a", "a_1", "b", "relu", "x", "y_1"])), max_size=40))
def test_fresh_names_never_collide(steps):
    graph = chain_graph()
    names = FreshNames(graph)
    handed: dict[str, set[str]] = {"tensor": set(), "node": set()}
    for action, base in steps:
        if action in ("tensor", "node"):
            live_tensors = set(graph.tensors)
            live_nodes_ = {n.name for n in graph.nodes}
            name = names.tensor(base) if action == "tensor" else names.node(base)
            assert name not in handed[action]
            assert name not in live_nodes_
            if action == "tensor":
                assert name not in live_tensors
            handed[action].add(name)
        elif action == "add_tensor":  # someone adds a tensor by hand: later names avoid it
            graph.tensors[base] = Tensor(base, (1,), F)
        elif action == "add_node":
            graph.nodes.append(Node(base, "Identity", [], []))
        elif graph.nodes:  # names stay taken after their node is gone
            graph.nodes.pop()


def test_fresh_names_suffixes_and_namespaces():
    graph = chain_graph()
    names = FreshNames(graph)
    assert names.tensor("a") == "a_1" and names.tensor("a") == "a_2"
    assert names.tensor("relu") == "relu_1"  # tensor names avoid node names too
    assert names.node("a") == "a" and names.node("relu") == "relu_1"
    proto_names = FreshNames(tensors={"w", "w_1"})
    assert proto_names.tensor("w") == "w_2"


# ----- dead code ------------------------------------------------------------------------------
def test_remove_dead_drops_unreachable_nodes_and_tensors():
    graph = chain_graph()
    assert remove_dead(graph) == 2
    assert [n.name for n in graph.nodes] == ["relu", "neg"]
    assert set(graph.tensors) == {"x", "a", "y"}
    graph.validate()


def test_multi_output_node_kept_when_one_output_is_used():
    nodes = [Node("split", "Split", ["x"], ["p", "q"]), Node("neg", "Neg", ["p"], ["y"])]
    kept = live_nodes(nodes, ["y"], lambda n: n.inputs, lambda n: n.outputs)
    assert kept == nodes


def test_live_nodes_on_onnx_protos():
    from onnx2mcu.frontend.simplify import remove_dead_nodes

    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"], name="r"), helper.make_node("Abs", ["a"], ["dead"], name="d"),
         helper.make_node("Add", ["a", "k"], ["y"], name="s")], "g", [x], [y],
        initializer=[onnx.numpy_helper.from_array(np.ones(2, np.float32), "k"),
                     onnx.numpy_helper.from_array(np.ones(2, np.float32), "spare")]))
    assert remove_dead_nodes(model)
    assert [n.name for n in model.graph.node] == ["r", "s"]
    assert [i.name for i in model.graph.initializer] == ["k"]
    assert not remove_dead_nodes(model)


# ----- replacement keeps the order topological ---------------------------------------------------
def test_replace_puts_new_nodes_at_the_last_old_node():
    graph = chain_graph()
    ed = Rewriter(graph)
    fused = ed.new_node("relu_neg", "Neg", ["x"], ["y"])
    # `a` stays alive for the dead branch: the new node comes where `neg` was
    ed.replace(graph.node("neg"), [fused])
    assert [n.name for n in graph.nodes] == ["relu", "abs", "relu_neg", "add"]
    assert ed.producer("y") is fused and ed.consumers("a") == [graph.node("abs")]
    graph.validate()
    graph = chain_graph()
    remove_dead(graph)
    ed = Rewriter(graph)
    ed.replace([graph.node("relu"), graph.node("neg")], [ed.new_node("one", "Neg", ["x"], ["y"])])
    assert [n.name for n in graph.nodes] == ["one"] and ed.producer("y").name == "one"
    graph.validate()


def test_replace_reorders_when_a_reader_stood_earlier():
    # b reads t, which the replacement now produces at the place of the last old node (q)
    graph = graph_of(
        [Node("p", "Relu", ["x"], ["t"]), Node("b", "Neg", ["t"], ["u"]), Node("q", "Abs", ["x"], ["v"]),
         Node("out", "Add", ["u", "v"], ["y"])],
        [(n, (2,)) for n in "xtuvy"], ["x"], ["y"])
    ed = Rewriter(graph)
    both = ed.new_node("pq", "Split", ["x"], ["t", "v"])
    ed.replace([graph.node("p"), graph.node("q")], [both])
    assert is_topological(graph)
    assert [n.name for n in graph.nodes] == ["pq", "b", "out"]
    graph.validate()


def test_insert_and_remove_keep_the_index_current():
    graph = chain_graph()
    ed = Rewriter(graph)
    assert ed.sole_consumer("y") is None  # a graph output
    t = ed.add_tensor("a_copy", (2, 3), F)
    ed.insert_before(graph.node("neg"), ed.new_node("copy", "Identity", ["a"], [t]))
    assert ed.producer(t).name == "copy" and len(ed.consumers("a")) == 3
    ed.remove(graph.node("copy"))
    assert ed.producer(t) is None


# ----- matchers -----------------------------------------------------------------------------------
def test_scalar_and_channel_vector():
    assert scalar(np.float32(2.5)) == 2.5 and scalar(np.full((1, 1), 3.0)) == 3.0
    assert scalar(np.full((2, 2), 3.0)) is None and scalar(np.full((2, 2), 3.0), uniform=True) == 3.0
    assert scalar(np.array([1.0, 2.0]), uniform=True) is None and scalar(None) is None
    assert scalar(np.zeros(0), uniform=True) is None
    np.testing.assert_array_equal(channel_vector(np.arange(4.0).reshape(4, 1, 1), (1, 4, 5, 5), 1),
                                  np.arange(4.0))
    assert channel_vector(np.ones((4, 5)), (1, 4, 5, 5), 1) is None
    np.testing.assert_array_equal(channel_vector(np.float32(2), (3, 4), 1), np.full(4, 2.0))


def projection_graph(kind: str) -> Graph:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    if kind == "matmul_add":
        nodes = [Node("mm", "MatMul", ["x", "w"], ["h"]), Node("add", "Add", ["b", "h"], ["y"])]
        tensors = [("x", (2, 3)), ("h", (2, 5)), ("y", (2, 5)), ("w", (3, 5), w), ("b", (5,), b)]
    else:
        nodes = [Node("gemm", "Gemm", ["x", "wt", "b"], ["y"], {"transB": 1, "alpha": 2.0})]
        tensors = [("x", (2, 3)), ("y", (2, 5)), ("wt", (5, 3), w.T), ("b", (5,), b)]
    return graph_of(nodes, tensors, ["x"], ["y"])


@pytest.mark.parametrize("kind", ["matmul_add", "gemm"])
def test_projection_matches_both_spellings(kind):
    graph = projection_graph(kind)
    ix = Rewriter(graph)
    found = projection(ix, "y")
    assert found is not None and found.x == "x" and found.bias == "b"
    assert [n.name for n in found.nodes] == [n.name for n in graph.nodes]
    assert found.plain == (kind == "matmul_add")
    w = found.weight_in_out(ix)
    assert w.shape == (3, 5)
    x = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    from onnx2mcu.simulator import simulate
    from onnx2mcu.scheduler import schedule

    want = simulate(graph, schedule(graph, "file-order"), {"x": x}).outputs["y"]
    got = found.alpha * x @ w + found.beta * ix.const(found.bias)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_projection_rejects_runtime_weights_and_bias_add_width():
    graph = projection_graph("matmul_add")
    graph.tensors["w"].data = None
    graph.inputs.append("w")
    ix = Rewriter(graph)
    assert projection(ix, "y") is None and as_projection(ix, graph.node("mm")) is None
    assert bias_add(ix, "h", 5) == ("b", graph.node("add")) and bias_add(ix, "h", 4) is None


def test_affine_consumer_and_is_closed():
    graph = graph_of(
        [Node("relu", "Relu", ["x"], ["a"]), Node("div", "Div", ["a", "d"], ["b"]),
         Node("sub", "Sub", ["b", "s"], ["y"])],
        [("x", (1, 4, 2, 2)), ("a", (1, 4, 2, 2)), ("b", (1, 4, 2, 2)), ("y", (1, 4, 2, 2)),
         ("d", (4, 1, 1), [[[2.0]], [[4.0]], [[0.5]], [[1.0]]]), ("s", (1,), [3.0])],
        ["x"], ["y"])
    ix = Rewriter(graph)
    div = affine_consumer(ix, "a", 1)
    np.testing.assert_array_equal(div.mul, [0.5, 0.25, 2.0, 1.0])
    assert div.add is None and div.node.name == "div"
    sub = affine_consumer(ix, "b", 1)
    np.testing.assert_array_equal(sub.add, [-3.0] * 4)
    assert affine_consumer(ix, "y", 1) is None  # a graph output has no sole consumer
    graph.tensors["d"].data = np.zeros((4, 1, 1), np.float32)
    assert affine_consumer(ix, "a", 1) is None  # division by zero is not affine
    assert is_closed(ix, graph.nodes, "y") and not is_closed(ix, graph.nodes[:2], "a")


def test_layout_probe_recognises_a_head_split():
    b, s, heads, dh = 1, 3, 2, 4
    graph = graph_of(
        [Node("r", "Reshape", ["x", "shape"], ["r"]),
         Node("m", "Mul", ["r", "c"], ["m"]),
         Node("t", "Transpose", ["m"], ["y"], {"perm": [0, 2, 1, 3]})],
        [("x", (b, s, heads * dh)), ("r", (b, s, heads, dh)), ("m", (b, s, heads, dh)),
         ("y", (b, heads, s, dh)), ("c", (1,), [0.5])],
        ["x"], ["y"])
    graph.tensors["shape"] = Tensor("shape", (4,), DType.INT64, np.array([b, s, heads, dh]))
    ix = Rewriter(graph)

    def split(p):
        return p.reshape(b, s, heads, dh).transpose(0, 2, 1, 3)

    assert same_layout(ix, "x", graph.nodes, (b, s, heads * dh), split, passthrough=("Mul",))
    assert not same_layout(ix, "x", graph.nodes, (b, s, heads * dh), lambda p: split(p).transpose(0, 1, 3, 2),
                           passthrough=("Mul",))
    # without passing the scale through, the probe is scaled and no longer a layout
    assert not same_layout(ix, "x", graph.nodes, (b, s, heads * dh), split)
    assert run_index_ops(ix, "nothing", np.zeros(3), graph.nodes) is None


# ----- the nonzero proof used by the binary lowering --------------------------------------------
def test_never_zero_checks_every_reachable_dot():
    dots = np.arange(-4, 5, 2)  # k = 4: -4, -2, 0, 2, 4
    assert not never_zero(np.ones(2), None, dots)  # d = 0 gives 0
    assert never_zero(np.ones(2), np.full(2, 0.5), dots)
    assert not never_zero(np.array([1.0, 0.25]), np.array([0.5, -0.5]), dots)  # 2 * 0.25 - 0.5
    assert never_zero(np.ones(1), None, np.arange(-5, 6, 2))  # odd k never sums to 0
    assert not never_zero(np.array([np.inf]), np.zeros(1), dots)


# ----- validate and the pass contract ------------------------------------------------------------
BROKEN = """
import numpy as np
from onnx2mcu.ir import DType, Graph, GraphError, Node, Tensor
g = Graph("g", [Node("n", "Neg", ["late"], ["y"]), Node("m", "Relu", ["x"], ["late"])],
          {n: Tensor(n, (1,)) for n in ("x", "y", "late")}, ["x"], ["y"])
try:
    g.validate()
except GraphError as exc:
    print("GraphError:", exc)
"""


def test_validate_raises_graph_error_under_python_O():
    out = subprocess.run([sys.executable, "-O", "-c", textwrap.dedent(BROKEN)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "GraphError: n: input late not yet produced"


@pytest.mark.parametrize("breakage,message", [
    (lambda g: g.nodes.append(Node("relu", "Relu", ["x"], ["z"])), "duplicate node name relu"),
    (lambda g: g.nodes.append(Node("again", "Relu", ["x"], ["a"])), "output a is already produced"),
    (lambda g: g.nodes.append(Node("ghost", "Relu", ["x"], ["nowhere"])), "output nowhere has no tensor"),
    (lambda g: g.outputs.append("e2"), "graph output e2 is never produced"),
])
def test_validate_errors(breakage, message):
    graph = chain_graph()
    graph.tensors["z"] = Tensor("z", (2, 3))
    breakage(graph)
    with pytest.raises(GraphError, match=message):
        graph.validate()


def test_every_pass_is_validated_and_named(monkeypatch):
    def breaks_order(graph, ctx):
        graph.nodes.reverse()
        return {"reversed": True}

    seen = []

    def records(graph, ctx):
        seen.append((type(ctx.options).__name__, ctx.names.tensor("a")))
        ctx.report.note("a note")
        return None

    monkeypatch.setattr(pipeline, "PASSES", [("records", records)])
    _, report = optimize(chain_graph(), OptimizeOptions(tile="none"))
    assert seen == [("OptimizeOptions", "a_1")] and report == {"optimize_notes": ["a note"]}
    monkeypatch.setattr(pipeline, "PASSES", [("records", records), ("breaks_order", breaks_order)])
    with pytest.raises(GraphError, match="after graph_opt pass 'breaks_order'"):
        optimize(chain_graph())


def test_pass_context_for_graph_defaults():
    graph = chain_graph()
    ctx = PassContext.for_graph(graph)
    assert ctx.options == OptimizeOptions() and ctx.report.to_dict() == {}
    assert ctx.names.tensor("x") == "x_1"
