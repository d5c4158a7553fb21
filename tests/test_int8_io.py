"""--int8-io (graph_opt/int8_io.py): a model quantized inside with float I/O (MCUNet-VWW) takes and
gives its int8 tensors, as TinyEngine and TFLite's int8-I/O conversion do.

* The graph input becomes the first QuantizeLinear's int8 output and the graph output the last
  DequantizeLinear's int8 input, with their scales and zero points (report, model.h).
* The numbers do not change: fed the dequantized int8 input, the float-I/O model's outputs are the
  int8-I/O model's outputs dequantized, bit for bit; with --requant float both agree with
  onnxruntime through that mapping.
* With --patch auto the float input no longer bounds the arena: MCUNet-VWW at <= 0.7x TinyEngine's
  peak (89,600 B); the generated C on the host and under QEMU gives the simulator's bytes.
* Without the option nothing moves and the report says it was not asked.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from onnx2mcu.ir import DType
from onnx2mcu.pipeline import Options, run
from onnx2mcu.simulator import simulate

pytestmark = pytest.mark.shared

MCUNET = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "mcunet" / "mcunet_vww_qdq.onnx"
TINYENGINE_PEAK = 89_600  # ../shared/anchors/README.md, MCUNet-VWW
HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
HAVE_QEMU = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None


@pytest.fixture(scope="module")
def mcunet() -> Path:
    if not MCUNET.exists():
        pytest.skip(f"{MCUNET} is absent")
    return MCUNET


def _plan(path: Path, **options):
    return run(path, Options(stop_after="schedule", scheduler="greedy", **options))


def test_int8_io_moves_the_edge_quantization_and_keeps_the_numbers(mcunet):
    floats, ints = _plan(mcunet), _plan(mcunet, int8_io=True)
    section = ints.optimization["int8_io"]
    (moved_in,), (moved_out,) = section["inputs"], section["outputs"]
    assert moved_in["was"] == floats.graph.inputs[0] and moved_out["was"] == floats.graph.outputs[0]
    x, y = ints.graph.tensors[ints.graph.inputs[0]], ints.graph.tensors[ints.graph.outputs[0]]
    assert x.dtype is DType.INT8 and y.dtype is DType.INT8
    assert float(x.quant.scale) == moved_in["scale"] and float(y.quant.scale) == moved_out["scale"]
    assert "int8_io" in floats.optimization["not_applied"]
    rng = np.random.default_rng(5)
    for _ in range(4):
        q = rng.integers(-128, 128, x.shape).astype(np.int8)
        real = ((q.astype(np.float32) - moved_in["zero_point"]) * np.float32(moved_in["scale"])).astype(np.float32)
        got = simulate(ints.graph, ints.schedule, {ints.graph.inputs[0]: q}).outputs[ints.graph.outputs[0]]
        want = simulate(floats.graph, floats.schedule, {floats.graph.inputs[0]: real}).outputs[floats.graph.outputs[0]]
        assert got.dtype == np.int8
        deq = ((got.astype(np.float32) - moved_out["zero_point"]) * np.float32(moved_out["scale"])).astype(np.float32)
        assert deq.tobytes() == want.astype(np.float32).tobytes()


def test_int8_io_agrees_with_onnxruntime_through_the_mapping(mcunet):
    """--requant float: onnxruntime on the original model, fed the dequantized int8 input."""
    result = run(mcunet, Options(requant="float", int8_io=True, scheduler="greedy", simulate=True))
    agreement = result.simulation.agreement
    scale = result.optimization["int8_io"]["outputs"][0]["scale"]
    assert agreement is not None and agreement.max_abs_err <= scale * (1 + 1e-6), agreement


def test_int8_io_with_patches_is_below_tinyengine(mcunet):
    plan = _plan(mcunet, int8_io=True, patch="auto", board="mps2-an386")
    assert plan.schedule.peak_bytes <= 0.7 * TINYENGINE_PEAK, plan.schedule.peak_bytes
    assert plan.optimization["patch"]["extra_macs"] > 0


@pytest.mark.c
@pytest.mark.skipif(not HAVE_HOST, reason="gcc or make missing")
@pytest.mark.parametrize("mode", ["host", pytest.param("qemu", marks=[
    pytest.mark.qemu, pytest.mark.skipif(not HAVE_QEMU, reason="no QEMU")])])
def test_int8_io_c_equals_the_simulator(mcunet, tmp_path, mode):
    from onnx2mcu.runner import run_project_dir

    out = tmp_path / "mcunet_int8_io"
    run(mcunet, Options(output=out, board="mps2-an386", int8_io=True, patch="auto", scheduler="greedy"))
    header = (out / "model.h").read_text()
    assert "MODEL_INPUT0_TYPE int8_t" in header and "MODEL_INPUT0_SCALE" in header
    data = run_project_dir(str(out), mode, timeout=900)
    assert data["ok"], data.get("agreement")
    assert data["arena_bytes"] <= 0.7 * TINYENGINE_PEAK
