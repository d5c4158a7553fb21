"""Shrinking in place (docs/ARCHITECTURE.md, memory model): an int8 depthwise Conv and a float
-> int8 QuantizeLinear write their output over their dying input (issue 14, item 3).

* The memory model: the output is a buffer of its own size pinned to the input's offset, live
  from the next step; the arena plan keeps the pin (Problem == profile on random graphs with a
  shrinking op: tests/test_scheduler.py).
* The C kernels in place equal the same kernels writing elsewhere and the numpy references, on
  seeded random cases (stride 1, 2, 3, padding, dilation, batch 2, per-channel and per-tensor,
  --requant float; the arm-dsp variant), on the host and under QEMU mps2-an386.
* Small QDQ models (depthwise stride 1 padded, stride 2 padded, stride 1 unpadded, 5x5 stride 2;
  a float-input QuantizeLinear): the in-place schedule's outputs equal the not-in-place
  schedule's in the simulator and in the generated C (host, QEMU).
* MCUNet-VWW int8: arena 96,000 B -> at most TinyEngine's 89,600 B, outputs byte-identical to
  the not-in-place model in the simulator and in C; the other int8 models' arenas do not grow.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx2mcu.ir import DType, Graph, Node, Tensor
from onnx2mcu.memory import profile
from onnx2mcu.ops import int8_ref as R
from onnx2mcu.ops.int8 import INPLACE_ATTR, QuantizeInt8, _quantize_away
from onnx2mcu.pipeline import Options, run
from onnx2mcu.scheduler import schedule
from onnx2mcu.scheduler.arena import aligned_peak, check_plan, greedy_by_size, plan_arena
from onnx2mcu.scheduler.schedule import Schedule
from onnx2mcu.simulator import simulate

RUNTIME = Path(__file__).resolve().parents[1] / "runtime_c"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"
HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
HAVE_QEMU = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None
TINYENGINE_MCUNET_PEAK = 89_600  # ../shared/anchors/README.md


def not_in_place(graph: Graph, sched: Schedule) -> Schedule:
    """The same order with every output in bytes of its own (memory.profile(inplace=False))."""
    prof = profile(graph, sched.order, inplace=False)
    plan = plan_arena(prof, time_limit=2.0)
    check_plan(prof, plan)
    return Schedule(list(sched.order), prof, plan, "not in place", 0.0)


def same_bytes(sched: Schedule, a: str, b: str) -> bool:
    prof, plan = sched.profile, sched.plan
    return plan.offsets[prof.buffer_of[a]] == plan.offsets[prof.buffer_of[b]]


# ----------------------------------------------------------------- the memory model
def quantize_graph(consumer: bool) -> Graph:
    """x float [1, 100] -> QuantizeLinear -> q int8 (-> DequantizeLinear -> d float)."""
    tensors = {"x": Tensor("x", (1, 100)), "q": Tensor("q", (1, 100), DType.INT8),
               "s": Tensor("s", (), data=np.array(0.1, np.float32)),
               "z": Tensor("z", (), DType.INT8, data=np.array(3, np.int8))}
    nodes = [Node("quant", "QuantizeLinear", ["x", "s", "z"], ["q"])]
    outputs = ["q"]
    if consumer:
        tensors["d"] = Tensor("d", (1, 100))
        nodes.append(Node("dequant", "DequantizeLinear", ["q", "s", "z"], ["d"]))
        outputs = ["d"]
    return Graph("quant", nodes, tensors, ["x"], outputs)


def test_quantize_output_is_pinned_into_its_dying_input():
    graph = quantize_graph(consumer=True)
    prof = profile(graph)
    x, q = (prof.buffers[prof.buffer_of[t]] for t in ("x", "q"))
    assert q.pinned_to == x.index and (x.first, x.last) == (0, 0) and (q.first, q.last) == (1, 1)
    assert q.nbytes == 100 and x.nbytes == 400
    assert prof.live_bytes == [400, 100 + 400]  # at its step only x's bytes; then q's own
    assert profile(graph, inplace=False).live_bytes == [500, 500]
    sched = schedule(graph, "file-order")
    assert same_bytes(sched, "x", "q")
    assert sched.arena_bytes == aligned_peak(prof.buffers) == 112 + 400
    assert greedy_by_size(prof.buffers).offsets[q.index] == greedy_by_size(prof.buffers).offsets[x.index]
    x_value = np.random.default_rng(0).normal(0, 5, (1, 100)).astype(np.float32)
    got = simulate(graph, sched, {"x": x_value}).outputs["d"]
    apart = simulate(graph, not_in_place(graph, sched), {"x": x_value}).outputs["d"]
    assert got.tobytes() == apart.tobytes()
    expected = (np.clip(np.rint(x_value / np.float32(0.1)) + 3, -128, 127) - 3) * np.float32(0.1)
    np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_a_shrunk_output_at_the_last_step_lives_nowhere_but_sits_at_the_input():
    graph = quantize_graph(consumer=False)
    prof = profile(graph)
    q = prof.buffers[prof.buffer_of["q"]]
    assert q.empty and q.pinned_to == prof.buffer_of["x"] and prof.live_bytes == [400]
    sched = schedule(graph, "greedy")
    assert same_bytes(sched, "x", "q") and sched.arena_bytes == 400
    x_value = np.linspace(-20, 20, 100, dtype=np.float32).reshape(1, 100)
    got = simulate(graph, sched, {"x": x_value}).outputs["q"]
    assert got.tobytes() == simulate(graph, not_in_place(graph, sched), {"x": x_value}).outputs["q"].tobytes()


def test_check_plan_refuses_a_pinned_buffer_placed_elsewhere():
    graph = quantize_graph(consumer=True)
    sched = schedule(graph, "file-order")
    q = sched.profile.buffer_of["q"]
    offsets = dict(sched.plan.offsets)
    offsets[sched.profile.buffer_of["d"]] = 1024  # out of the way: only the pin is broken
    from onnx2mcu.scheduler.arena import ArenaPlan

    check_plan(sched.profile, ArenaPlan(offsets, 1024 + 400, "apart"))
    offsets[q] += 16
    with pytest.raises(AssertionError, match="pinned"):
        check_plan(sched.profile, ArenaPlan(offsets, 1024 + 400, "moved"))


# ----------------------------------------------------------------- the C kernels
def _requant(rng, c: int, per_channel: bool):
    count = c if per_channel else 1
    mult = rng.integers(1 << 30, (1 << 31) - 1, count)
    shift = rng.choice([-12, -9, -8, -7, -5, -3, -1, 0, 1], count)
    scales = rng.uniform(1e-4, 0.05, count).astype(np.float32)
    return mult.astype(np.int64), shift.astype(np.int64), scales


def dw_case(rng, mode: str) -> dict:
    """A depthwise conv (groups == C_in == C_out) whose output plane is no larger than its input's."""
    while True:
        c, n = int(rng.integers(2, 7)), int(rng.integers(1, 3))
        k_h, k_w = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        dilation = (1, 1) if rng.integers(0, 3) else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pads = tuple(int(rng.integers(0, kk)) for kk in (k_h, k_w, k_h, k_w))
        h, wd = int(rng.integers(2, 13)), int(rng.integers(2, 13))
        if rng.integers(0, 3) == 0:  # "same" padding, stride 1: the output has the input's size
            k_h, k_w = (int(v) for v in rng.choice([1, 3, 5], 2))
            stride, dilation = (1, 1), (1, 1)
            pads = (k_h // 2, k_w // 2, k_h // 2, k_w // 2)
        per_channel = bool(rng.integers(0, 2))
        mult, shift, scales = _requant(rng, c, per_channel)
        zp_in, zp_out = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
        lo = int(rng.choice([-128, zp_out]))
        full = (lambda v: np.repeat(v, c)) if not per_channel else (lambda v: v)
        p = R.ConvParams(stride, dilation, pads, c, -zp_in, zp_out, full(mult), full(shift), full(scales), lo, 127)
        ho, wo = R.conv_output_hw(h, wd, k_h, k_w, p)
        if ho < 1 or wo < 1 or ho * wo > h * wd:
            continue
        x = rng.integers(-128, 128, (n, c, h, wd)).astype(np.int8)
        w = rng.integers(-128, 128, (c, 1, k_h, k_w)).astype(np.int8)
        bias = rng.integers(-(1 << 14), 1 << 14, c).astype(np.int32)
        dsp = mode == "fixed" and dilation == (1, 1)  # o2m_s8_conv_dsp.c's depthwise forms
        return {"x": x, "w": w, "bias": bias, "p": p, "mode": mode, "per_channel": per_channel, "mult": mult,
                "shift": shift, "scales": scales, "hw_out": (ho, wo), "dsp": dsp,
                "y": R.conv2d(x, w, bias, p, mode)}


def quantize_cases(rng) -> list[dict]:
    from onnx2mcu.ops.quant import _quantize

    cases = []
    for n in (1, 7, 64, 301):
        ties = (np.arange(n, dtype=np.float32) - n // 2 + np.float32(0.5)) * np.float32(0.25)
        x = np.where(rng.random(n) < 0.5, ties, rng.normal(0, 20, n)).astype(np.float32)
        zp = int(rng.integers(-128, 128))
        cases.append({"kind": "away", "x": x, "scale": 0.25, "zp": zp,
                      "y": _quantize_away(x, QuantizeInt8("fixed", 0.25, zp))})
    for dtype, kind in ((np.int8, "s8"), (np.uint8, "u8")):
        outer, axis_dim, inner = 2, 3, 5
        x = rng.normal(0, 10, (outer, axis_dim, inner)).astype(np.float32)
        scale = rng.uniform(0.05, 0.5, axis_dim).astype(np.float32)
        info = np.iinfo(dtype)
        zp = rng.integers(info.min, info.max + 1, axis_dim).astype(dtype)
        y = _quantize(Node("q", "QuantizeLinear", ["x", "s", "z"], ["y"], {"axis": 1}), [x, scale, zp])[0]
        cases.append({"kind": kind, "x": x, "scale": scale, "zp": zp, "shape": (outer, axis_dim, inner), "y": y})
    return cases


def _arr(ctype: str, name: str, values) -> str:
    values = [v for v in np.asarray(values).reshape(-1)] or [0]
    text = ", ".join(repr(float(v)) + "f" if ctype == "float" else str(int(v)) for v in values)
    return f"static const {ctype} {name}[{len(values)}] = {{{text}}};"


def kernel_program(convs: list[dict], quants: list[dict]) -> str:
    """main.c: each conv through o2m_depthwise_conv2d_s8_inplace over a copy of its input
    ("inplace_i") and into another buffer ("apart_i"), the arm-dsp one over its input ("dsp_i");
    each quantize over its float input ("q_j")."""
    from onnx2mcu.codegen.emit.int8_dsp import folded_bias

    decls, body = [], []
    work = max(max(c["x"].size for c in convs), 4 * max(q["x"].size for q in quants))
    y_max = max(c["y"].size for c in convs)
    scratch = max(c["hw_out"][0] * c["hw_out"][1] for c in convs)
    for i, c in enumerate(convs):
        p = c["p"]
        n, ch, h, wd = c["x"].shape
        _, _, k_h, k_w = c["w"].shape
        ho, wo = c["hw_out"]
        decls += [_arr("int8_t", f"x{i}", c["x"]), _arr("int8_t", f"w{i}", c["w"]),
                  _arr("int32_t", f"b{i}", c["bias"]), _arr("int32_t", f"m{i}", c["mult"]),
                  _arr("int32_t", f"s{i}", c["shift"])]
        if c["mode"] == "float":
            decls.append(_arr("float", f"sc{i}", c["scales"]))
        if c["dsp"]:
            decls.append(_arr("int32_t", f"f{i}", folded_bias(c["w"], c["bias"], p.input_offset)))
        scales = f"sc{i}" if c["mode"] == "float" else "NULL"
        pc = int(c["per_channel"])
        geometry = (f"{ch}, {h}, {wd}, {ch}, {ho}, {wo}, {k_h}, {k_w}, {p.stride[0]}, {p.stride[1]}, "
                    f"{p.dilation[0]}, {p.dilation[1]}, {p.pads[0]}, {p.pads[1]}")
        size_in, size_out = c["x"].size, c["y"].size
        dsp = ""
        if c["dsp"]:
            dsp = f"""
        static const o2m_conv2d_s8_dsp_params fp = {{{n}, {geometry}, {-p.input_offset}, f{i}, b{i}, NULL,
            {{m{i}, s{i}, {pc}, {p.output_offset}, {p.act_min}, {p.act_max}}}, NULL}};
        memcpy(work, x{i}, {size_in}u);
        o2m_depthwise_conv2d_s8_dsp_inplace(&fp, work, w{i}, work, scratch);
        o2m_out_s8("dsp_{i}", work, {size_out}u);"""
        body.append(f"""    {{
        static const o2m_conv2d_s8_params pp = {{{n}, {geometry}, {ch}, {p.input_offset},
            {{m{i}, s{i}, {scales}, {pc}, {p.output_offset}, {p.act_min}, {p.act_max}}}, 0}};
        memcpy(work, x{i}, {size_in}u);
        o2m_depthwise_conv2d_s8_inplace(&pp, work, w{i}, b{i}, work, scratch);
        o2m_out_s8("inplace_{i}", work, {size_out}u);
        o2m_depthwise_conv2d_s8_inplace(&pp, x{i}, w{i}, b{i}, y_apart, scratch);
        o2m_out_s8("apart_{i}", y_apart, {size_out}u);{dsp}
    }}""")
    for j, q in enumerate(quants):
        size = q["x"].size
        decls.append(_arr("float", f"qx{j}", q["x"]))
        body.append(f"    memcpy(fwork, qx{j}, {4 * size}u);")
        if q["kind"] == "away":
            body.append(f"    o2m_quantize_away_s8({size}, fwork, {q['scale']!r}f, {q['zp']}, (int8_t *)fwork);")
            body.append(f'    o2m_out_s8("q_{j}", (const int8_t *)fwork, {size}u);')
            continue
        ctype = "int8_t" if q["kind"] == "s8" else "uint8_t"
        decls += [_arr("float", f"qs{j}", q["scale"]), _arr(ctype, f"qz{j}", q["zp"])]
        outer, axis_dim, inner = q["shape"]
        body.append(f"    o2m_quantize_{q['kind']}({outer}, {axis_dim}, {inner}, fwork, qs{j}, qz{j}, ({ctype} *)fwork);")
        body.append(f'    o2m_out_{q["kind"]}("q_{j}", (const {ctype} *)fwork, {size}u);')
    return "\n".join([
        "#include <string.h>", '#include "o2m_s8_conv.h"', '#include "o2m_s8_conv_dsp.h"', '#include "o2m_quant.h"',
        '#include "o2m_s8_quantize.h"', '#include "o2m_io.h"', *decls,
        f"static int8_t work[{work}], y_apart[{y_max}], scratch[{scratch}];",
        f"static float fwork[{(work + 3) // 4}];",
        "int main(void)", "{", *body, "    o2m_done();", "    return 0;", "}", ""])


KERNEL_SOURCES = ("o2m_s8_conv.c", "o2m_s8_conv_dsp.c", "o2m_quant.c", "o2m_s8_quantize.c")


@pytest.fixture(scope="module")
def kernel_cases():
    rng = np.random.default_rng(41)
    convs = [dw_case(rng, "fixed") for _ in range(24)] + [dw_case(rng, "float") for _ in range(8)]
    return convs, quantize_cases(rng)


def test_kernel_cases_cover_the_forms(kernel_cases):
    convs, _ = kernel_cases
    shrinking = [c for c in convs if np.prod(c["hw_out"]) < np.prod(c["x"].shape[2:])]
    assert shrinking and len(shrinking) < len(convs)  # both the same-size and the shrinking form
    assert {c["p"].stride for c in convs} >= {(1, 1), (2, 2)} and any(3 in c["p"].stride for c in convs)
    assert any(c["x"].shape[0] == 2 for c in convs) and any(c["p"].dilation != (1, 1) for c in convs)
    assert any(c["per_channel"] for c in convs) and any(not c["per_channel"] for c in convs)
    assert any(max(c["p"].pads) > 0 for c in convs) and sum(c["dsp"] for c in convs) >= 10


def _check_kernels(outputs: dict, convs: list[dict], quants: list[dict]) -> None:
    for i, c in enumerate(convs):
        want = c["y"].reshape(-1)
        np.testing.assert_array_equal(outputs[f"inplace_{i}"], want, err_msg=f"conv {i} in place")
        np.testing.assert_array_equal(outputs[f"apart_{i}"], want, err_msg=f"conv {i} apart")
        if c["dsp"]:
            np.testing.assert_array_equal(outputs[f"dsp_{i}"], want, err_msg=f"conv {i} arm-dsp in place")
    for j, q in enumerate(quants):
        np.testing.assert_array_equal(outputs[f"q_{j}"], q["y"].reshape(-1), err_msg=f"quantize {j} ({q['kind']})")


def _build_kernels(tmp: Path, target: str, convs, quants) -> Path:
    from onnx2mcu.codegen.board_project import write_board_files

    for path in list(RUNTIME.glob("*.h")) + [RUNTIME / name for name in KERNEL_SOURCES]:
        shutil.copy2(path, tmp / path.name)
    (tmp / "main.c").write_text(kernel_program(convs, quants))
    write_board_files(target, tmp, ["main.c", *KERNEL_SOURCES])
    return tmp


@pytest.mark.c
@pytest.mark.skipif(not HAVE_HOST, reason="gcc or make missing")
def test_in_place_kernels_equal_the_references_on_the_host(tmp_path, kernel_cases):
    from onnx2mcu.simulator.run_c import build, run_host

    build(_build_kernels(tmp_path, "host", *kernel_cases), "host")
    result = run_host(tmp_path)
    assert result.exit_code == 0, result.stderr
    _check_kernels(result.outputs(), *kernel_cases)


@pytest.mark.c
@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_QEMU, reason="arm-none-eabi-gcc or qemu-system-arm missing")
def test_in_place_kernels_equal_the_references_under_qemu(tmp_path, kernel_cases):
    from onnx2mcu.simulator.run_c import build, run_qemu

    elf = build(_build_kernels(tmp_path, "mps2-an386", *kernel_cases), "mps2-an386")
    result = run_qemu(tmp_path, "mps2-an386", count_instructions=False, elf=elf)
    assert result.exit_code == 0, result.stderr
    _check_kernels(result.outputs(), *kernel_cases)


# ----------------------------------------------------------------- small models
GEOMETRIES = {  # name: (channels, height, width, kernel, stride, pads)
    "stride1_padded": (6, 10, 9, 3, 1, 1),
    "stride2_padded": (8, 12, 12, 3, 2, 1),
    "stride1_unpadded": (5, 9, 11, 3, 1, 0),
    "stride2_5x5": (5, 11, 13, 5, 2, 2),
}


def dw_model(channels: int, height: int, width: int, k: int, stride: int, pad: int,
             float_io: bool = False, seed: int = 0) -> onnx.ModelProto:
    """A QDQ depthwise Conv (per-channel int8 weights, int32 bias, Relu6 folded as a Clip), int8
    input and output, or float ones through a QuantizeLinear / DequantizeLinear."""
    rng = np.random.default_rng(seed)
    w_scale = rng.uniform(0.002, 0.02, channels).astype(np.float32)
    init = [numpy_helper.from_array(rng.integers(-127, 128, (channels, 1, k, k)).astype(np.int8), "wq"),
            numpy_helper.from_array(w_scale, "ws"), numpy_helper.from_array(np.zeros(channels, np.int8), "wz"),
            numpy_helper.from_array(rng.integers(-3000, 3000, channels).astype(np.int32), "bq"),
            numpy_helper.from_array((np.float32(0.05) * w_scale).astype(np.float32), "bs"),
            numpy_helper.from_array(np.zeros(channels, np.int32), "bz"),
            numpy_helper.from_array(np.array(0.05, np.float32), "sx"),
            numpy_helper.from_array(np.array(-3, np.int8), "zx"),
            numpy_helper.from_array(np.array(0.03, np.float32), "sy"),
            numpy_helper.from_array(np.array(-128, np.int8), "zy"),
            numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
            numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
    x, y = ("x", "y") if float_io else ("xq", "yq")
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"])] if float_io else []
    nodes += [helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xf"]),
              helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wf"], axis=0),
              helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bf"], axis=0),
              helper.make_node("Conv", ["xf", "wf", "bf"], ["c"], group=channels, kernel_shape=[k, k],
                               strides=[stride, stride], pads=[pad] * 4),
              helper.make_node("Clip", ["c", "lo", "hi"], ["r"]),
              helper.make_node("QuantizeLinear", ["r", "sy", "zy"], ["yq"])]
    if float_io:
        nodes.append(helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"]))
    out_h, out_w = (height + 2 * pad - k) // stride + 1, (width + 2 * pad - k) // stride + 1
    dtype = TensorProto.FLOAT if float_io else TensorProto.INT8
    graph = helper.make_graph(nodes, "dw", [helper.make_tensor_value_info(x, dtype, [1, channels, height, width])],
                              [helper.make_tensor_value_info(y, dtype, [1, channels, out_h, out_w])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def _inputs(graph: Graph, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    (name,) = graph.inputs
    tensor = graph.tensors[name]
    if tensor.dtype is DType.FLOAT32:
        return {name: rng.uniform(-6, 6, tensor.shape).astype(np.float32)}
    return {name: rng.integers(-128, 128, tensor.shape).astype(np.int8)}


def _plan(path: Path, **kwargs):
    return run(path, Options(stop_after="schedule", scheduler="greedy", **kwargs))


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_depthwise_runs_in_place_and_keeps_its_outputs(tmp_path, geometry):
    channels, height, width, k, stride, pad = GEOMETRIES[geometry]
    path = tmp_path / "dw.onnx"
    onnx.save(dw_model(*GEOMETRIES[geometry]), path)
    inplace, apart = _plan(path), _plan(path, rewrites="none")
    (conv,) = [n for n in inplace.graph.nodes if n.op_type == "Conv"]
    assert conv.attrs.get(INPLACE_ATTR) == 1, inplace.optimization
    assert not any(n.attrs.get(INPLACE_ATTR) for n in apart.graph.nodes)
    x, y = conv.inputs[0], conv.outputs[0]
    x_bytes, y_bytes = (inplace.graph.tensors[t].nbytes for t in (x, y))
    plane = inplace.graph.tensors[y].shape[2] * inplace.graph.tensors[y].shape[3]
    assert same_bytes(inplace.schedule, x, y) and not same_bytes(apart.schedule, x, y)
    assert inplace.schedule.peak_bytes == x_bytes + plane < apart.schedule.peak_bytes == x_bytes + y_bytes
    assert inplace.optimization["inplace_conv"]["where"] == [conv.name]
    y_buffer = inplace.schedule.profile.buffers[inplace.schedule.profile.buffer_of[y]]
    assert (y_buffer.pinned_to is not None) == (y_bytes < x_bytes)  # shrinking: pinned; same size: shared
    (out,) = inplace.graph.outputs
    for seed in range(3):
        values = _inputs(inplace.graph, seed)
        got = simulate(inplace.graph, inplace.schedule, values).outputs[out]
        assert got.tobytes() == simulate(apart.graph, apart.schedule, values).outputs[out].tobytes()
        assert got.tobytes() == simulate(apart.graph, not_in_place(apart.graph, apart.schedule),
                                         values).outputs[out].tobytes()


def test_float_input_quantize_shrinks_into_the_input(tmp_path):
    path = tmp_path / "dwf.onnx"
    onnx.save(dw_model(*GEOMETRIES["stride2_padded"], float_io=True), path)
    result = _plan(path)
    graph, sched = result.graph, result.schedule
    (quant,) = [n for n in graph.nodes if n.op_type == "QuantizeLinear"]
    x, q = quant.inputs[0], quant.outputs[0]
    assert same_bytes(sched, x, q) and sched.profile.buffers[sched.profile.buffer_of[q]].pinned_to is not None
    step = [n.name for n in sched.order].index(quant.name)
    assert sched.profile.live_bytes[step] == graph.tensors[x].nbytes  # not x + q
    apart = not_in_place(graph, sched)
    assert apart.profile.live_bytes[step] == graph.tensors[x].nbytes + graph.tensors[q].nbytes
    (out,) = graph.outputs
    for seed in range(3):
        values = _inputs(graph, seed)
        got = simulate(graph, sched, values).outputs[out]
        assert got.tobytes() == simulate(graph, apart, values).outputs[out].tobytes()


def quantize_only_model(dtype: int) -> onnx.ModelProto:
    """x float [1, 4, 6, 5] -> QuantizeLinear (per channel) -> y int8 / uint8: ONNX's rounding."""
    numpy_type = np.int8 if dtype == TensorProto.INT8 else np.uint8
    init = [numpy_helper.from_array(np.array([0.1, 0.25, 0.05, 1.0], np.float32), "s"),
            numpy_helper.from_array(np.array([0, 3, -5 if dtype == TensorProto.INT8 else 200, 7], numpy_type), "z")]
    graph = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=1)], "q",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 5])],
                              [helper.make_tensor_value_info("y", dtype, [1, 4, 6, 5])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


# ----------------------------------------------------------------- generated C
def _compile_and_run(path: Path, out: Path, board: str, modes: tuple[str, ...]):
    from test_int8_models import run_c

    result = run(path, Options(output=out, simulate=True, check_onnxruntime=False, board=board,
                               scheduler="greedy"))
    expected = result.simulation.result.outputs
    for mode in modes:
        outputs, _ = run_c(out, mode)
        for name, value in expected.items():
            assert outputs[name].reshape(value.shape).tobytes() == value.tobytes(), (board, mode, name)
    return result, (out / "model.c").read_text()


def _c_cases():
    cases = []
    for geometry in sorted(GEOMETRIES):
        cases.append(pytest.param(geometry, "host", ("host",), id=f"{geometry}-host"))
        cases.append(pytest.param(geometry, "mps2-an386", ("host", "qemu"), id=f"{geometry}-mps2",
                                  marks=[pytest.mark.qemu, pytest.mark.skipif(not HAVE_QEMU, reason="no QEMU")]))
    return cases


@pytest.mark.c
@pytest.mark.skipif(not HAVE_HOST, reason="gcc or make missing")
@pytest.mark.parametrize("geometry,board,modes", _c_cases())
def test_generated_c_in_place_equals_the_simulator(tmp_path, geometry, board, modes):
    path = tmp_path / "dw.onnx"
    onnx.save(dw_model(*GEOMETRIES[geometry], seed=3), path)
    result, model_c = _compile_and_run(path, tmp_path / "out", board, modes)
    (conv,) = [n for n in result.graph.nodes if n.op_type == "Conv"]
    assert same_bytes(result.schedule, conv.inputs[0], conv.outputs[0])
    # portable on the host; the arm-dsp depthwise on the Cortex-M4 (windows up to 8x8)
    kernel = "o2m_depthwise_conv2d_s8_inplace(" if board == "host" else "o2m_depthwise_conv2d_s8_dsp_inplace("
    assert model_c.count(kernel) == 1, model_c
    apart = _plan(path, rewrites="none")
    values = result.inputs
    (out,) = result.graph.outputs
    assert result.simulation.result.outputs[out].tobytes() == simulate(
        apart.graph, not_in_place(apart.graph, apart.schedule), values).outputs[out].tobytes()


@pytest.mark.c
@pytest.mark.skipif(not HAVE_HOST, reason="gcc or make missing")
@pytest.mark.parametrize("model", ["depthwise_float_io", "quantize_int8", "quantize_uint8"])
def test_generated_c_quantize_in_place_equals_the_simulator(tmp_path, model):
    path = tmp_path / "m.onnx"
    if model == "depthwise_float_io":  # TFLite's rounding (o2m_quantize_away_s8)
        onnx.save(dw_model(*GEOMETRIES["stride1_padded"], float_io=True, seed=5), path)
    else:  # ONNX's rounding, per channel (o2m_quantize_s8 / _u8); its output is the graph's
        onnx.save(quantize_only_model(TensorProto.INT8 if model == "quantize_int8" else TensorProto.UINT8), path)
    modes = ("host", "qemu") if HAVE_QEMU else ("host",)
    result, model_c = _compile_and_run(path, tmp_path / "out", "mps2-an386", modes)
    graph, sched = result.graph, result.schedule
    (quant,) = [n for n in graph.nodes if n.op_type == "QuantizeLinear"]
    assert same_bytes(sched, quant.inputs[0], quant.outputs[0])
    assert ("o2m_quantize_away_s8(" if model == "depthwise_float_io" else "o2m_quantize_") in model_c
    (out,) = graph.outputs
    assert result.simulation.result.outputs[out].tobytes() == simulate(
        graph, not_in_place(graph, sched), result.inputs).outputs[out].tobytes()


# ----------------------------------------------------------------- the real models
def _shared(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="module")
def mcunet():
    path = _shared("mcunet/mcunet_vww_qdq.onnx")
    return path, _plan(path), _plan(path, rewrites="none")


@pytest.mark.shared
def test_mcunet_arena_meets_tinyengine(mcunet):
    _, inplace, apart = mcunet
    assert apart.schedule.peak_bytes == 96_000  # the QuantizeLinear shrinks; no conv in place
    assert inplace.schedule.arena_bytes <= TINYENGINE_MCUNET_PEAK
    graph, sched = inplace.graph, inplace.schedule
    marked = [n for n in graph.nodes if n.attrs.get(INPLACE_ATTR)]
    assert marked and inplace.optimization["inplace_conv"]["peak_after"] <= TINYENGINE_MCUNET_PEAK
    # the old peak step: the stride-2 depthwise conv (1, 48, 40, 40) -> (1, 48, 20, 20) now in place
    strided = [n for n in marked if graph.tensors[n.inputs[0]].shape == (1, 48, 40, 40)
               and graph.tensors[n.outputs[0]].shape == (1, 48, 20, 20)]
    assert strided and all(same_bytes(sched, n.inputs[0], n.outputs[0]) for n in strided)
    (x_name,), (y_name,) = graph.inputs, graph.outputs
    flat = not_in_place(apart.graph, apart.schedule)
    rng = np.random.default_rng(8)
    for _ in range(3):
        x = rng.random(graph.tensors[x_name].shape, dtype=np.float32)
        got = simulate(graph, sched, {x_name: x}).outputs[y_name]
        assert got.tobytes() == simulate(apart.graph, flat, {x_name: x}).outputs[y_name].tobytes()


@pytest.mark.shared
@pytest.mark.c
@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.skipif(not (HAVE_HOST and HAVE_QEMU), reason="gcc, arm-none-eabi-gcc or qemu missing")
def test_mcunet_c_in_place_equals_the_not_in_place_simulator(mcunet, tmp_path):
    path, _, apart = mcunet
    result, model_c = _compile_and_run(path, tmp_path / "mcunet", "mps2-an386", ("host", "qemu"))
    assert result.schedule.arena_bytes <= TINYENGINE_MCUNET_PEAK
    assert model_c.count("o2m_depthwise_conv2d_s8_dsp_inplace(") >= 1
    (y_name,) = result.graph.outputs
    flat = not_in_place(apart.graph, apart.schedule)
    assert result.simulation.result.outputs[y_name].tobytes() == simulate(
        apart.graph, flat, result.inputs).outputs[y_name].tobytes()


# before in-place shrinking (benchmarks/int8.md, --scheduler greedy): none may grow
ARENAS_BEFORE = {"mlperf_tiny/kws_ref_model.onnx": 16_000, "mlperf_tiny/vww_96_int8.onnx": 55_296,
                 "mlperf_tiny/pretrainedResnet_quant.onnx": 49_152, "mlperf_tiny/ad01_int8.onnx": 768}


@pytest.mark.shared
@pytest.mark.parametrize("relative", sorted(ARENAS_BEFORE))
def test_other_int8_arenas_do_not_grow(relative):
    result = _plan(_shared(relative))
    assert result.schedule.arena_bytes <= ARENAS_BEFORE[relative]
    assert result.schedule.peak_bytes <= _plan(_shared(relative), rewrites="none").schedule.peak_bytes
