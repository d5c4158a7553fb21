"""The memory model (DESIGN §3) on small hand-built graphs with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from onnx2mcu.ir import DType, Graph, Node, Tensor
from onnx2mcu.scheduler import schedule
from onnx2mcu.scheduler.arena import ArenaPlan, check_plan
from onnx2mcu.memory import profile
from onnx2mcu.simulator import simulate


def chain_graph(sizes: list[int], op: str = "Relu") -> Graph:
    """x -> op -> t1 -> op -> t2 ... ; every tensor [1, size] float32."""
    tensors = {"x": Tensor("x", (1, sizes[0]))}
    nodes = []
    prev = "x"
    for i, size in enumerate(sizes[1:], 1):
        name = f"t{i}"
        tensors[name] = Tensor(name, (1, size))
        if size == sizes[i - 1]:
            nodes.append(Node(f"n{i}", op, [prev], [name]))
        else:  # a size change needs a MatMul with a constant
            w = f"w{i}"
            tensors[w] = Tensor(w, (sizes[i - 1], size), data=np.ones((sizes[i - 1], size), np.float32))
            nodes.append(Node(f"n{i}", "MatMul", [prev, w], [name]))
        prev = name
    return Graph("chain", nodes, tensors, ["x"], [prev])


def test_inplace_chain_needs_one_buffer():
    graph = chain_graph([100, 100, 100, 100])
    prof = profile(graph)
    assert prof.peak_bytes == 400  # every Relu overwrites its dying input
    assert len({prof.buffer_of[t] for t in ("x", "t1", "t2", "t3")}) == 1


def test_without_inplace_inputs_and_outputs_coexist():
    graph = chain_graph([100, 100, 100])
    assert profile(graph, inplace=False).peak_bytes == 800


def test_inplace_refused_when_input_still_needed():
    graph = chain_graph([10, 10])
    graph.tensors["y"] = Tensor("y", (1, 10))
    graph.nodes.append(Node("add", "Add", ["x", "t1"], ["y"]))
    graph.outputs = ["y"]
    prof = profile(graph)
    # x is read again by `add`, so Relu may not overwrite it; Add may take x or t1
    assert prof.buffer_of["t1"] != prof.buffer_of["x"]
    assert prof.live_bytes == [80, 80]


def test_matmul_peak_is_inputs_plus_output():
    graph = chain_graph([64, 32, 32])
    prof = profile(graph)
    assert prof.live_bytes[0] == 64 * 4 + 32 * 4
    assert prof.peak_step == 0


def test_plan_fits_peak_on_chain_and_simulation_matches_numpy():
    graph = chain_graph([16, 8, 8, 4])
    sched = schedule(graph, "file-order")
    assert sched.arena_bytes == sched.peak_bytes
    x = np.random.default_rng(0).standard_normal((1, 16)).astype(np.float32)
    result = simulate(graph, sched, {"x": x})
    expected = np.maximum(x @ np.ones((16, 8), np.float32), 0) @ np.ones((8, 4), np.float32)
    np.testing.assert_allclose(result.outputs["t3"], expected, rtol=1e-6)
    assert result.peak_bytes == max(result.live_bytes)


def test_check_plan_catches_overlapping_live_buffers():
    graph = chain_graph([16, 8, 4])
    prof = profile(graph)
    bad = ArenaPlan({b.index: 0 for b in prof.buffers}, max(b.nbytes for b in prof.buffers), "bad")
    with pytest.raises(AssertionError, match="overlap"):
        check_plan(prof, bad)


def test_graph_output_stays_live_to_the_end():
    graph = chain_graph([10, 10])
    graph.tensors["z"] = Tensor("z", (1, 10))
    graph.nodes.append(Node("relu2", "Relu", ["x"], ["z"]))
    graph.outputs = ["t1", "z"]
    prof = profile(graph)
    t1 = prof.buffers[prof.buffer_of["t1"]]
    assert t1.last == 1
    assert prof.live_bytes[1] == 40 * 3 - 40  # x dies into z in place; t1 still live


def test_dtype_sizes_count():
    graph = chain_graph([10, 10])
    graph.tensors["x"].dtype = DType.INT64
    assert graph.tensors["x"].nbytes == 80
