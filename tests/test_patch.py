"""Patch-based inference (graph_opt/patch.py, onnx2mcu/ops/patch.py, codegen/emit/patch.py).

* A PatchedChain's reference equals the untiled chain (the lead Pad / Transpose and the int8
  Convs, one after the other) on every element, for many grids, on a synthetic chain with odd
  sizes, strides 2, a Pad whose value is not the zero point, and on the real models' chains.
* `--patch auto` lowers the scheduled peak of MCUNet-VWW and VWW (VWW to <= 0.7x TinyEngine's
  55,296 B; MCUNet-VWW to its float input, 76,800 B, and with an int8 input to <= 0.7x TinyEngine's
  89,600 B), reports the extra MACs, and the whole model's outputs equal the untiled model's.
* The generated C (portable on the host, arm-dsp on mps2-an386 under QEMU and on the host)
  gives the simulator's bytes.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx2mcu.graph_opt.patch import Run, find_runs, make_node
from onnx2mcu.graph_opt.pipeline import total_macs
from onnx2mcu.ir import DType
from onnx2mcu.ops.patch import PATCHED, chain_macs, plan
from onnx2mcu.ops.registry import run_reference
from onnx2mcu.pipeline import Options, run
from onnx2mcu.simulator import simulate

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"
MCUNET = SHARED / "mcunet" / "mcunet_vww_qdq.onnx"
VWW = SHARED / "mlperf_tiny" / "vww_96_int8.onnx"
TINYENGINE_PEAK = {"mcunet": 89_600, "vww": 55_296}
HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
HAVE_QEMU = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None
GRIDS = [(1, 2), (2, 1), (2, 2), (3, 3), (2, 5), (4, 3), (7, 7), (8, 8)]


# ----------------------------------------------------------------- a synthetic chain
def chain_model(seed: int = 0, height: int = 37, width: int = 29, channels: int = 3,
                lead: bool = True) -> onnx.ModelProto:
    """int8 NHWC input -> Pad (value 0.36, not the zero point; uneven pads) -> Transpose to NCHW ->
    Conv 3x3 s2 -> depthwise 3x3 s1 p1 -> 1x1 (x4 channels) -> depthwise 5x5 s2 p2 -> 1x1 -> depthwise
    3x3 s2 p(0,1) -> output: odd sizes everywhere, per-channel weights, Relu6 as a Clip on some.
    `lead` False: an NCHW input read by the first conv directly (no Pad, no Transpose)."""
    rng = np.random.default_rng(seed)
    init, nodes = [], []

    def const(name, value):
        init.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def q(name, src, scale, zp):
        const(f"{name}_s", np.array(scale, np.float32))
        const(f"{name}_z", np.array(zp, np.int8))
        nodes.append(helper.make_node("QuantizeLinear", [src, f"{name}_s", f"{name}_z"], [name]))
        nodes.append(helper.make_node("DequantizeLinear", [name, f"{name}_s", f"{name}_z"], [f"{name}_f"]))
        return f"{name}_f"

    const("x_s", np.array(0.04, np.float32))
    const("x_z", np.array(5, np.int8))
    nodes.append(helper.make_node("DequantizeLinear", ["x", "x_s", "x_z"], ["x_f"]))
    if not lead:
        nodes.pop()
    const("pads", np.array([0, 1, 2, 0, 0, 2, 1, 0], np.int64))  # NHWC: top 1, left 2, bottom 2, right 1
    const("pad_q", np.array(14, np.int8))  # real (14 - 5) * 0.04 = 0.36, quantized as the data
    nodes.append(helper.make_node("DequantizeLinear", ["pad_q", "x_s", "x_z"], ["pad_v"]))
    if lead:
        nodes.append(helper.make_node("Pad", ["x_f", "pads", "pad_v"], ["p"]))
        cur = q("pq", "p", 0.04, 5)
        nodes.append(helper.make_node("Transpose", [cur], ["t"], perm=[0, 3, 1, 2]))
        cur = q("tq", "t", 0.04, 5)
    else:
        nodes.append(helper.make_node("DequantizeLinear", ["x", "x_s", "x_z"], ["x_f"]))
        cur = "x_f"
    c_in, scale_in = channels, 0.04
    layers = [  # (c_out, k, stride, pads, depthwise, relu6)
        (8, 3, 2, [0, 0, 0, 0], False, True),
        (8, 3, 1, [1, 1, 1, 1], True, True),
        (32, 1, 1, [0, 0, 0, 0], False, False),
        (32, 5, 2, [2, 2, 2, 2], True, True),
        (12, 1, 1, [0, 0, 0, 0], False, True),
        (12, 3, 2, [0, 0, 1, 1], True, False),
    ]
    for i, (c_out, k, stride, pads, depthwise, relu6) in enumerate(layers):
        group = c_in if depthwise else 1
        w_scale = rng.uniform(0.002, 0.02, c_out).astype(np.float32)
        const(f"w{i}", rng.integers(-127, 128, (c_out, c_in // group, k, k)).astype(np.int8))
        const(f"w{i}_s", w_scale)
        const(f"w{i}_z", np.zeros(c_out, np.int8))
        const(f"b{i}", rng.integers(-2000, 2000, c_out).astype(np.int32))
        const(f"b{i}_s", (np.float32(scale_in) * w_scale).astype(np.float32))
        const(f"b{i}_z", np.zeros(c_out, np.int32))
        nodes.append(helper.make_node("DequantizeLinear", [f"w{i}", f"w{i}_s", f"w{i}_z"], [f"w{i}_f"], axis=0))
        nodes.append(helper.make_node("DequantizeLinear", [f"b{i}", f"b{i}_s", f"b{i}_z"], [f"b{i}_f"], axis=0))
        nodes.append(helper.make_node("Conv", [cur, f"w{i}_f", f"b{i}_f"], [f"c{i}"], group=group,
                                      kernel_shape=[k, k], strides=[stride, stride], pads=pads))
        out = f"c{i}"
        if relu6:
            const(f"lo{i}", np.array(0.0, np.float32))
            const(f"hi{i}", np.array(6.0, np.float32))
            nodes.append(helper.make_node("Clip", [out, f"lo{i}", f"hi{i}"], [f"r{i}"]))
            out = f"r{i}"
        scale_out = 0.03 + 0.005 * i
        if i == len(layers) - 1:
            const("y_s", np.array(scale_out, np.float32))
            const("y_z", np.array(-7, np.int8))
            nodes.append(helper.make_node("QuantizeLinear", [out, "y_s", "y_z"], ["y"]))
        else:
            cur = q(f"q{i}", out, scale_out, -128 if relu6 else 3)
        c_in, scale_in = c_out, scale_out
    x_shape = [1, height, width, channels] if lead else [1, channels, height, width]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.INT8, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, None)], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    return onnx.shape_inference.infer_shapes(model)


def _int8_input(graph, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    (name,) = graph.inputs
    tensor = graph.tensors[name]
    if tensor.dtype is DType.FLOAT32:
        return {name: rng.random(tensor.shape, dtype=np.float32)}
    return {name: rng.integers(-128, 128, tensor.shape).astype(np.int8)}


def _untiled(graph, sub: Run, x: np.ndarray) -> np.ndarray:
    """The lead and the convs one after the other (the references the simulator runs untiled)."""
    values = {sub.lead[0].inputs[0] if sub.lead else sub.convs[0].inputs[0]: x}
    for node in sub.lead + sub.convs:
        args = [values.get(n, graph.tensors[n].data if n and graph.tensors[n].is_const else None)
                for n in node.inputs]
        values[node.outputs[0]] = run_reference(node, args, graph)[0]
    return values[sub.convs[-1].outputs[0]]


def _check_grids(graph, sub: Run, grids, seeds=(0, 1)) -> None:
    x_name = sub.lead[0].inputs[0] if sub.lead else sub.convs[0].inputs[0]
    shape = graph.tensors[x_name].shape
    for seed in seeds:
        x = np.random.default_rng(seed).integers(-128, 128, shape).astype(np.int8)
        want = _untiled(graph, sub, x)
        for grid in grids:
            node = make_node(graph, sub, grid, f"patch_test_{grid[0]}x{grid[1]}")
            args = [x] + [graph.tensors[n].data for n in node.inputs[1:]]
            got = run_reference(node, args, graph)[0]
            assert got.shape == want.shape and got.tobytes() == want.tobytes(), (grid, seed)
            tiled, untiled = chain_macs(node, graph)
            assert tiled >= untiled > 0


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("patch") / "chain.onnx"
    onnx.save(chain_model(), path)
    return path


@pytest.fixture(scope="module")
def synthetic_auto(tmp_path_factory) -> Path:
    """The chain on a larger image, where some patching costs under 25% extra MACs (graph_opt/patch.py
    MAX_EXTRA_MACS): what --patch auto takes."""
    path = tmp_path_factory.mktemp("patch") / "chain_auto.onnx"
    onnx.save(chain_model(height=77, width=61), path)
    return path


def test_synthetic_chain_is_found_with_its_lead(synthetic):
    graph = run(synthetic, Options(stop_after="optimize")).graph
    (chain,) = find_runs(graph)
    assert [n.op_type for n in chain.lead] == ["Pad", "Transpose"] and len(chain.convs) == 6
    assert chain.layout == "nhwc" and chain.pads == (1, 2, 2, 1)
    assert chain.value != int(graph.tensors[chain.convs[0].inputs[0]].quant.zero_point)


@pytest.mark.parametrize("convs", [1, 2, 4, 6])
def test_patched_reference_equals_the_untiled_chain(synthetic, convs):
    graph = run(synthetic, Options(stop_after="optimize")).graph
    (chain,) = find_runs(graph)
    _check_grids(graph, Run(chain.lead, chain.convs[:convs], chain.layout, chain.pads, chain.value), GRIDS)
    # a sub-chain without the lead, starting at a strided depthwise conv
    if convs == 6:
        _check_grids(graph, Run([], chain.convs[3:], "nchw", (0, 0, 0, 0), 0), GRIDS)


def test_patch_geometry_pads_only_at_the_image_border(synthetic):
    graph = run(synthetic, Options(stop_after="optimize")).graph
    (chain,) = find_runs(graph)
    node = make_node(graph, chain, (3, 3), "patch_geometry")
    p = plan(node, graph)
    for layers in p.patches:
        for k, g in enumerate(layers):
            _, h, w = p.shapes[k]
            top, left, bottom, right = g.pads
            assert (top > 0) <= (g.in_rect[0] == 0) and (left > 0) <= (g.in_rect[2] == 0)
            assert (bottom > 0) <= (g.in_rect[1] == h) and (right > 0) <= (g.in_rect[3] == w)
    # the scratch holds two neighbouring patch buffers, not the whole intermediates
    whole = sum(c * h * w for c, h, w in p.shapes[1:-1])
    assert p.scratch_bytes < whole


def _patched(path, **kwargs):
    none = run(path, Options(stop_after="schedule", scheduler="greedy", **kwargs))
    auto = run(path, Options(stop_after="schedule", scheduler="greedy", patch="auto", **kwargs))
    return none, auto


def _same_outputs(none, auto, seeds=(0, 1, 2)) -> None:
    for seed in seeds:
        values = _int8_input(none.graph, seed)
        a = simulate(none.graph, none.schedule, values).outputs
        b = simulate(auto.graph, auto.schedule, values).outputs
        for name in a:
            assert a[name].tobytes() == b[name].tobytes(), (name, seed)


@pytest.mark.parametrize("requant", ["fixed", "float"])
def test_patch_auto_on_the_synthetic_chain(synthetic_auto, requant):
    none, auto = _patched(synthetic_auto, requant=requant)
    section = auto.optimization["patch"]
    (chain,) = section["chains"]
    assert auto.schedule.peak_bytes < none.schedule.peak_bytes
    assert chain["extra_macs"] == chain["macs_patched"] - chain["macs_untiled"] >= 0
    assert total_macs(auto.graph) == total_macs(none.graph) + chain["extra_macs"]
    assert chain["extra_macs"] <= 0.25 * total_macs(none.graph)
    assert sum(1 for n in auto.graph.nodes if n.op_type == PATCHED) == 1
    _same_outputs(none, auto)
    # --patch none is the default and leaves the graph alone
    assert "patch" not in none.optimization
    assert not any(n.op_type == PATCHED for n in none.graph.nodes)


# ----------------------------------------------------------------- the real models
def _shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


def mcunet_int8_input(tmp_path: Path) -> Path:
    """MCUNet-VWW taking its input as int8, as TinyEngine does: the graph input is the output of
    the model's first QuantizeLinear (whose float input alone is 76,800 B)."""
    model = onnx.load(_shared(MCUNET))
    graph = model.graph
    first = graph.node[0]
    assert first.op_type == "QuantizeLinear" and first.input[0] == graph.input[0].name
    shape = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    del graph.node[0]
    graph.input.remove(graph.input[0])
    graph.input.insert(0, helper.make_tensor_value_info(first.output[0], TensorProto.INT8, shape))
    path = tmp_path / "mcunet_int8_input.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.shared
@pytest.mark.parametrize("name", ["vww", "mcunet", "mcunet_int8"])
def test_patch_auto_lowers_the_real_models_peaks(name, tmp_path):
    path = {"vww": lambda: _shared(VWW), "mcunet": lambda: _shared(MCUNET),
            "mcunet_int8": lambda: mcunet_int8_input(tmp_path)}[name]()
    none, auto = _patched(path)
    section = auto.optimization["patch"]
    peak = auto.schedule.peak_bytes
    extra = section["extra_macs"]
    print(f"{name}: peak {none.schedule.peak_bytes:,} -> {peak:,} B, +{extra:,} MACs "
          f"({section['chains'][0]['grid']} grid)")
    if name == "vww":
        assert peak <= 0.7 * TINYENGINE_PEAK["vww"]
    elif name == "mcunet":
        # the float input (80 x 80 x 3 x 4 B) is live at the first step: the floor of any schedule
        assert peak == auto.graph.tensors[auto.graph.inputs[0]].nbytes == 76_800 < none.schedule.peak_bytes
    else:
        assert peak <= 0.7 * TINYENGINE_PEAK["mcunet"]
    # the MACs reported are the graph's: the untiled model's plus the halo recomputed
    assert extra == sum(c["macs_patched"] - c["macs_untiled"] for c in section["chains"]) > 0
    assert total_macs(auto.graph) == total_macs(none.graph) + extra
    _same_outputs(none, auto)
    # the chain's own output, element by element, against the untiled layers
    for node in auto.graph.nodes:
        if node.op_type != PATCHED:
            continue
        chain = node.attrs["chain"]
        graph = none.graph
        by_name = {n.name: n for n in graph.nodes}
        sub = Run([by_name[n] for n in chain.folded], [by_name[n.name] for n in chain.nodes], chain.layout,
                  chain.pads, chain.pad_value)
        _check_grids(graph, sub, [tuple(chain.grid)], seeds=(3,))


# ----------------------------------------------------------------- generated C
def _c_cases():
    cases = [pytest.param("synthetic", "host", ("host",), id="synthetic-host"),
             pytest.param("synthetic_float", "host", ("host",), id="synthetic-requant-float-host"),
             pytest.param("synthetic_nchw", "host", ("host",), id="synthetic-nchw-host"),
             pytest.param("synthetic_nchw", "mps2-an386", ("host", "qemu"), id="synthetic-nchw-mps2",
                          marks=[pytest.mark.qemu, pytest.mark.skipif(not HAVE_QEMU, reason="no QEMU")]),
             pytest.param("synthetic", "mps2-an386", ("host", "qemu"), id="synthetic-mps2",
                          marks=[pytest.mark.qemu, pytest.mark.skipif(not HAVE_QEMU, reason="no QEMU")])]
    for name in ("vww", "mcunet", "mcunet_int8"):
        cases.append(pytest.param(name, "mps2-an386", ("host", "qemu"), id=f"{name}-mps2",
                                  marks=[pytest.mark.qemu, pytest.mark.shared, pytest.mark.slow,
                                         pytest.mark.skipif(not HAVE_QEMU, reason="no QEMU")]))
    return cases


@pytest.mark.c
@pytest.mark.skipif(not HAVE_HOST, reason="gcc or make missing")
@pytest.mark.parametrize("model,board,modes", _c_cases())
def test_generated_c_patched_equals_the_simulator(model, board, modes, synthetic_auto, tmp_path):
    from test_int8_models import run_c

    requant = "float" if model == "synthetic_float" else "fixed"
    if model == "mcunet_int8":
        path = mcunet_int8_input(tmp_path)
    elif model == "synthetic_nchw":
        path = tmp_path / "chain_nchw.onnx"
        onnx.save(chain_model(seed=5, height=63, width=57, lead=False), path)
    else:
        path = {"synthetic": synthetic_auto, "synthetic_float": synthetic_auto, "vww": VWW, "mcunet": MCUNET}[model]
    if not Path(path).exists():
        pytest.skip(f"{path} is absent")
    out = tmp_path / "out"
    result = run(path, Options(output=out, simulate=True, check_onnxruntime=False, board=board,
                               scheduler="greedy", patch="auto", requant=requant))
    assert any(n.op_type == PATCHED for n in result.graph.nodes)
    expected = result.simulation.result.outputs
    for mode in modes:
        outputs, _ = run_c(out, mode)
        for name, value in expected.items():
            assert outputs[name].reshape(value.shape).tobytes() == value.tobytes(), (mode, name)
    model_c = (out / "model.c").read_text()
    assert "o2m_patch_gather_s8(" in model_c and "o2m_patch_scatter_s8(" in model_c
    if board == "host":
        assert "o2m_conv2d_s8(&q" in model_c and "_dsp(&q" not in model_c
    else:
        assert "o2m_depthwise_conv2d_s8_dsp(&q" in model_c
    # the untiled model gives the same bytes
    plain = run(path, Options(stop_after="schedule", scheduler="greedy", requant=requant))
    for name, value in simulate(plain.graph, plain.schedule, result.inputs).outputs.items():
        assert value.tobytes() == expected[name].tobytes()


def test_cli_patch_option_and_report_line(synthetic_auto, capsys):
    synthetic = synthetic_auto
    from onnx2mcu.cli import main

    assert main(["simulate", str(synthetic), "--no-check"]) == 0
    assert "patch-based inference" not in capsys.readouterr().out  # off by default: no line
    assert main(["simulate", str(synthetic), "--patch", "auto", "--no-check"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if "patch-based inference" in l)
    assert "patches" in line and "MACs" in line and "(PatchedChain)" in out
    with pytest.raises(SystemExit):
        main(["simulate", str(synthetic), "--patch", "sometimes"])


@pytest.mark.shared
def test_ram_budget_takes_the_fewest_extra_macs_that_fit():
    path = _shared(VWW)
    none, lowest = _patched(path)
    budget = (none.schedule.peak_bytes + lowest.schedule.peak_bytes) // 2
    fit = run(path, Options(stop_after="schedule", scheduler="greedy", patch="auto", ram_budget=budget))
    extra = fit.optimization["patch"]["extra_macs"]
    assert lowest.schedule.peak_bytes < fit.schedule.peak_bytes <= budget
    assert 0 < extra < lowest.optimization["patch"]["extra_macs"]
    _same_outputs(none, fit, seeds=(0,))
    # a budget the untiled model fits: nothing to do
    roomy = run(path, Options(stop_after="optimize", patch="auto", ram_budget=none.schedule.peak_bytes + 64))
    assert "patch" not in roomy.optimization and "already fits" in roomy.optimization["not_applied"]["patch"]
