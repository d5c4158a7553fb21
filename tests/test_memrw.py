"""Memory rewrites (graph_opt/act_on_load.py, eager_accumulation.py, partial_conv.py):
same outputs as the unrewritten model in the simulator, lower peaks where kept, never higher."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from nets import AMOEBANET_A, DARTS_V2, NASNET_A, nas_network, randwire  # noqa: E402

from onnx2mcu.errors import UserError  # noqa: E402
from onnx2mcu.graph_opt import OptimizeOptions  # noqa: E402
from onnx2mcu.graph_opt.act_on_load import fuse_activations  # noqa: E402
from onnx2mcu.graph_opt.context import PassContext  # noqa: E402
from onnx2mcu.graph_opt.eager_accumulation import chain_sums  # noqa: E402
from onnx2mcu.graph_opt.inplace_conv import wrap_convs  # noqa: E402
from onnx2mcu.graph_opt.memrw import REWRITES, parse_rewrites  # noqa: E402
from onnx2mcu.graph_opt.partial_conv import split_concats  # noqa: E402
from onnx2mcu.memory import profile  # noqa: E402
from onnx2mcu.scheduler import schedule  # noqa: E402
from onnx2mcu.scheduler.problem import Problem  # noqa: E402
from onnx2mcu.simulator.execute import simulate  # noqa: E402

TECHNIQUES = {"act_on_load": fuse_activations, "eager_accumulation": chain_sums, "partial_conv": split_concats,
              "inplace_conv": wrap_convs}
SHARED = ROOT.parent / "shared" / "models"


def small_nets():
    return {"nasnet": lambda: nas_network("nasnet", NASNET_A, cells=3, channels=4),
            "amoebanet": lambda: nas_network("amoebanet", AMOEBANET_A, cells=3, channels=4),
            "darts": lambda: nas_network("darts", DARTS_V2, cells=3, channels=4),
            "randwire": lambda: randwire(nodes=8, k=4, p=0.75, channels=4)}


def randomized(graph, seed=0):
    """The benchmark nets have zero weights; give every constant random values (BN variances > 0)."""
    rng = np.random.default_rng(seed)
    for t in graph.tensors.values():
        if t.is_const and t.data.dtype == np.float32:
            t.data = (rng.standard_normal(t.shape) * 0.5).astype(np.float32)
    for node in graph.nodes:
        if node.op_type == "BatchNormalization":
            var = graph.tensors[node.inputs[4]]
            var.data = (np.abs(var.data) + 0.5).astype(np.float32)
    return graph


def run(graph, x):
    sched = schedule(graph, "greedy", 5)
    return simulate(graph, sched, {graph.inputs[0]: x}).outputs[graph.outputs[0]], sched


def apply(graph, keys):
    ctx = PassContext.for_graph(graph)
    where = {}
    for key in keys:
        where[key] = TECHNIQUES[key](graph, ctx)
        graph.validate()
    return where


@pytest.mark.parametrize("net", sorted(small_nets()))
@pytest.mark.parametrize("keys", [("act_on_load",), ("eager_accumulation",), ("act_on_load", "partial_conv"),
                                  REWRITES], ids=lambda k: "+".join(k) if isinstance(k, tuple) else k)
def test_rewritten_outputs_match(net, keys):
    make = small_nets()[net]
    ref_graph, new_graph = randomized(make()), randomized(make())
    x = np.random.default_rng(1).standard_normal(ref_graph.tensors[ref_graph.inputs[0]].shape).astype(np.float32)
    expected, _ = run(ref_graph, x)
    where = apply(new_graph, keys)
    if net == "randwire" and keys == ("act_on_load", "partial_conv"):
        assert not where["partial_conv"]  # RandWire has no concat
    else:
        assert any(where.values()), where
    got, sched = run(new_graph, x)
    assert np.max(np.abs(expected)) > 0
    rel = np.max(np.abs(got - expected)) / np.max(np.abs(expected))
    assert rel <= 1e-6, rel
    # the scheduler's model equals the memory model on the rewritten graph
    prob = Problem(new_graph)
    assert max(prob.live_bytes(prob.indices(sched.order))) == profile(new_graph, sched.order).peak_bytes


def test_accumulator_takes_its_input_bytes():
    """The memory rule: an accumulate step's output shares the dying accumulator's buffer."""
    graph = randomized(small_nets()["darts"]())
    apply(graph, REWRITES)
    prof = profile(graph)
    steps = [n for n in graph.nodes if n.op_type == "AccumulateKernel"]
    assert steps
    shared = 0
    for node in steps:
        acc, out = node.inputs[0], node.outputs[0]
        readers = [n for n in graph.nodes if acc in n.inputs]
        if readers == [node] and acc not in graph.outputs:
            assert prof.buffer_of[acc] == prof.buffer_of[out], node.name
            shared += 1
    assert shared > 0
    assert not any(n.op_type == "Relu" for n in graph.nodes)  # every ReLU here feeds convs only


def test_inplace_conv_takes_its_input_bytes():
    """The in-place conv rule: in the scheduler's order some depthwise/1x1 conv writes over its
    dying input, and only convs whose geometry allows it ever do."""
    from onnx2mcu.ops.memrw import inplace_kind

    graph = randomized(small_nets()["randwire"]())
    apply(graph, REWRITES)
    sched = schedule(graph, "ilp", 10)
    prof = profile(graph, sched.order)
    shared = []
    for node in graph.nodes:
        if node.domain != "onnx2mcu":
            continue
        data = node.inputs[1 if node.op_type == "AccumulateKernel" else 0]
        if prof.buffer_of.get(data) == prof.buffer_of[node.outputs[0]]:
            assert inplace_kind(node, graph) is not None, node.name
            shared.append(node.name)
    assert shared


def test_cifar_nets_peaks_drop_and_stay_proven():
    """Full-size DARTS-V2: the rewrites lower the optimal peak by >= 10%, still proven or bounded."""
    from nets import complex_nets

    graph = complex_nets()["DARTS-V2"]
    before = schedule(graph, "greedy", 10).peak_bytes
    apply(graph, REWRITES)
    after = schedule(graph, "ilp", 30)
    assert after.lower_bound is not None and after.lower_bound <= after.peak_bytes
    assert after.peak_bytes <= 0.9 * 640 * 1024 < before
    assert after.arena_bytes == after.peak_bytes


def test_peak_estimate_does_not_depend_on_the_time_allowance(monkeypatch):
    """The rewrites' estimator (pipeline._peak_estimator) is bounded by work, not by the clock:
    full-size NASNet-A gets the same peak with a tiny and a large time allowance, and on a
    loaded machine (a clock that runs 10 ms per reading), so the kept rewrites cannot vary."""
    import types

    from nets import complex_nets

    from onnx2mcu.pipeline import Options, _peak_estimator
    from onnx2mcu.scheduler import heuristics, optimize as sched_optimize

    graph = complex_nets()["NASNet-A"]
    large = _peak_estimator(Options(time_limit=600))(graph)
    assert _peak_estimator(Options(time_limit=0.01))(graph) == large
    now, step = [0.0], [0.01]

    def slow_clock():
        now[0] += step[0]
        return now[0]

    clock = types.SimpleNamespace(perf_counter=slow_clock)
    monkeypatch.setattr(heuristics, "time", clock)
    monkeypatch.setattr(sched_optimize, "time", clock)
    estimator = _peak_estimator(Options(time_limit=0.01))
    assert estimator(graph) == large
    assert estimator.deadline_hits == 0
    step[0] = 10.0  # so slow that the safety net is reached: the stats say so
    outcome = sched_optimize.estimate(graph)
    assert outcome.stats["heuristic_deadline_hit"]


def test_partial_conv_retries_refused_concats():
    """Full-size NASNet-A: split alone, the first reduction cell's input concat raises the
    estimated peak, but with the later splits in it lowers it: the sweeps keep all 13 splits
    (one sweep kept 12: estimate 704 KiB; ilp 704 KiB, vs 512 KiB with all 13)."""
    from nets import complex_nets

    from onnx2mcu.graph_opt import optimize
    from onnx2mcu.scheduler.optimize import estimate

    graph = complex_nets()["NASNet-A"]
    concats = sum(1 for n in graph.nodes if n.op_type == "Concat")
    graph, report = optimize(graph, OptimizeOptions(
        rewrites="act_on_load,eager_accumulation,partial_conv", peak_estimator=lambda g: estimate(g).peak))
    assert report["partial_conv"]["applied"] == 13 < concats  # the factorized reductions' stay
    assert estimate(graph).peak <= 608 * 1024


def test_pass_keeps_only_lowering_rewrites():
    """Through graph_opt: kept with a report on a NAS cell, and absent when the estimate does not drop."""
    from onnx2mcu.graph_opt import optimize
    from onnx2mcu.scheduler.optimize import optimize as sched_optimize

    def estimator(g):
        return sched_optimize(g, "greedy", 2).peak

    original = small_nets()["darts"]()
    start = estimator(original)
    graph, report = optimize(small_nets()["darts"](), OptimizeOptions(peak_estimator=estimator))
    assert "act_on_load" in report
    for key in REWRITES:
        if key in report:
            assert report[key]["peak_after"] <= report[key]["peak_before"]
    assert estimator(graph) < start
    refused, report = optimize(small_nets()["darts"](), OptimizeOptions(peak_estimator=estimator,
                                                                        rewrite_check=lambda g: False))
    assert not any(k in report for k in REWRITES)
    assert not any(n.domain == "onnx2mcu" for n in refused.nodes)
    _, report = optimize(small_nets()["darts"](), OptimizeOptions(rewrites="none"))
    assert not any(k in report for k in REWRITES)


def test_rewrites_option():
    assert parse_rewrites("none") == ()
    assert parse_rewrites("all") == REWRITES
    assert parse_rewrites("partial_conv,act_on_load") == ("partial_conv", "act_on_load")
    with pytest.raises(UserError, match="unknown rewrite"):
        OptimizeOptions(rewrites="fold_everything")


def _shared_models():
    return sorted(SHARED.rglob("*.onnx")) if SHARED.exists() else []


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/models is absent")
@pytest.mark.parametrize("path", _shared_models(), ids=lambda p: p.name)
def test_shared_models_never_get_a_higher_peak(path):
    from onnx2mcu.pipeline import Options, run as run_pipeline

    peaks = {}
    for rewrites in ("none", "all"):
        result = run_pipeline(str(path), Options(rewrites=rewrites, scheduler="ilp", time_limit=10,
                                                 stop_after="schedule"))
        peaks[rewrites] = result.schedule.peak_bytes
    assert peaks["all"] <= peaks["none"], peaks


HAVE_CC = __import__("shutil").which("gcc") is not None and __import__("shutil").which("make") is not None
HAVE_QEMU = __import__("shutil").which("qemu-system-arm") is not None and \
    __import__("shutil").which("arm-none-eabi-gcc") is not None
MODES = ["host"] + (["qemu"] if HAVE_QEMU else [])


def _run_c(project, mode: str = "host") -> tuple[dict[str, np.ndarray], str]:
    """Build and run a compiled project on the host or under QEMU; outputs by tensor name, and
    the model.c text."""
    from onnx2mcu.runner import _prepare, load_project_inputs, read_report
    from onnx2mcu.simulator.run_c import build, run_host, run_qemu
    from onnx2mcu.targets import get_board

    project = Path(project)
    report = read_report(project)
    values = load_project_inputs(project, report, None)
    build_dir = _prepare(project, report, values, host=(mode == "host"))
    board = get_board(report["board"]["name"])
    build(build_dir, "host" if mode == "host" else board)
    result = run_host(build_dir) if mode == "host" else run_qemu(build_dir, board, count_instructions=False,
                                                                 timeout=300)
    assert result.exit_code == 0, result.stderr
    wire = {o["wire_name"]: o["name"] for o in report["c_io"]["outputs"]}
    outputs = {wire[k]: v.reshape(report["outputs"][wire[k]]["shape"]) for k, v in result.outputs().items()}
    return outputs, (project / "model.c").read_text()


def _compile(graph, tmp_path, x, board: str = "host"):
    import onnx

    from onnx2mcu.api import compile as compile_model

    placeholder = onnx.helper.make_model(onnx.helper.make_graph([], graph.name, [], []))  # the project's copy
    compile_model(placeholder, tmp_path / "proj", graph=graph, optimization={}, scheduler="greedy",
                  inputs={graph.inputs[0]: x}, board=board)
    return tmp_path / "proj"


@pytest.mark.c
@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("net", sorted(small_nets()))
def test_rewritten_c_matches_unrewritten_simulation(tmp_path, net, mode):
    """Generated C of the rewritten graph (conv, pool with prologue / accumulate / BN epilogue,
    in-place convs) on the host and under QEMU equals the unrewritten model in the simulator
    within 1e-6 relative, for a network of each family."""
    make = small_nets()[net]
    ref_graph, new_graph = randomized(make()), randomized(make())
    x = np.random.default_rng(2).standard_normal(ref_graph.tensors[ref_graph.inputs[0]].shape).astype(np.float32)
    expected, _ = run(ref_graph, x)
    where = apply(new_graph, REWRITES)
    assert any(where.values())
    assert any(n.domain == "onnx2mcu" for n in new_graph.nodes)
    project = _compile(new_graph, tmp_path, x, "host" if mode == "host" else "mps2-an386")
    got, model_c = _run_c(project, mode)
    assert "o2m_memrw_conv2d_f32(" in model_c
    rel = np.max(np.abs(got[new_graph.outputs[0]] - expected)) / np.max(np.abs(expected))
    assert rel <= 1e-6, rel


def _pool_gemm_graph():
    """Relu read by a MaxPool and an AveragePool (count_include_pad, ceil_mode) summed, then a
    Clip read by two Gemms summed: act_on_load and eager_accumulation reach every kernel."""
    from nets import Builder

    from onnx2mcu.ir import DType, Tensor

    b = Builder("poolgemm", (1, 4, 7, 7))
    r = b.relu(b.input)
    p1 = b.node("MaxPool", [r], (1, 4, 4, 4), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]})
    p2 = b.node("AveragePool", [r], (1, 4, 4, 4), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 0, 0],
                                                   "count_include_pad": 1, "ceil_mode": 1})
    s = b.bn(b.add(p1, p2))
    shape = b.const((2,))
    b.tensors[shape] = Tensor(shape, (2,), DType.INT64, data=np.array([1, 64], dtype=np.int64))
    flat = b.node("Reshape", [s, shape], (1, 64))
    lo, hi = b.const(()), b.const(())
    clip = b.node("Clip", [flat, lo, hi], (1, 64))
    g1 = b.node("Gemm", [clip, b.const((10, 64)), b.const((10,))], (1, 10), {"transB": 1})
    g2 = b.node("Gemm", [clip, b.const((64, 10))], (1, 10), {"alpha": 0.5})
    graph = randomized(b.graph(b.add(g1, g2)))
    graph.tensors[lo].data = np.array(0.1, dtype=np.float32)
    graph.tensors[hi].data = np.array(0.9, dtype=np.float32)
    return graph


@pytest.mark.c
@pytest.mark.skipif(not HAVE_CC, reason="no host C compiler")
def test_pool_and_gemm_kernels_with_prologue_and_accumulation(tmp_path):
    """The pool and Gemm kernels of the rewrites (prologue, accumulate, BN epilogue) in C equal
    the unrewritten graph in the simulator."""
    ref_graph, new_graph = _pool_gemm_graph(), _pool_gemm_graph()
    x = np.random.default_rng(3).standard_normal((1, 4, 7, 7)).astype(np.float32)
    expected, _ = run(ref_graph, x)
    apply(new_graph, ("act_on_load", "eager_accumulation"))
    kinds = {(n.op_type, n.attr("kernel"), n.attr("prologue", "")) for n in new_graph.nodes if n.domain == "onnx2mcu"}
    assert {k[1] for k in kinds} >= {"MaxPool", "AveragePool", "Gemm"}, kinds
    assert any(k[0] == "AccumulateKernel" for k in kinds) and {k[2] for k in kinds} >= {"Relu", "Clip"}, kinds
    got_sim, _ = run(new_graph, x)
    got, model_c = _run_c(_compile(new_graph, tmp_path, x))
    assert "o2m_memrw_pool2d_f32(" in model_c and "o2m_memrw_gemm_f32(" in model_c
    for value in (got_sim, got[new_graph.outputs[0]]):
        rel = np.max(np.abs(value - expected)) / np.max(np.abs(expected))
        assert rel <= 1e-6, rel


def test_cli_flag_reaches_the_options():
    import argparse

    from onnx2mcu.cli import pipeline_options

    assert pipeline_options(argparse.Namespace(rewrites="none")).rewrites == "none"
    assert pipeline_options(argparse.Namespace()).rewrites == "auto"


KWS_FLOAT = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "mlperf_tiny" / "kws_ref_model_float32.onnx"


@pytest.mark.shared
def test_auto_refuses_a_rewrite_that_slows_the_board_and_all_keeps_it():
    """--rewrites auto (the default) keeps a memory rewrite only if the board's estimated
    instructions rise by at most 2%: on KWS (float) for mps2-an386 the ReLUs applied on load and
    the in-place convs would halve the peak but move the pointwise and depthwise convs from the
    board's tiled kernels to portable fused ones (QEMU: 9.5 M -> 14.7 M instructions), so auto
    declines them and says why; --rewrites all keeps them."""
    if not KWS_FLOAT.exists():
        pytest.skip(f"{KWS_FLOAT} is absent")
    from onnx2mcu.pipeline import Options, run as run_pipeline

    def plan(rewrites: str):
        return run_pipeline(str(KWS_FLOAT), Options(board="mps2-an386", rewrites=rewrites, scheduler="greedy",
                                                   stop_after="schedule"))

    auto, everything = plan("auto"), plan("all")
    assert everything.schedule.peak_bytes < 0.6 * auto.schedule.peak_bytes
    why = auto.optimization["not_applied"]["act_on_load"]
    assert "more instructions (estimate)" in why and "--rewrites all" in why, why
    assert "act_on_load" in everything.optimization and "act_on_load" not in everything.optimization["not_applied"]
