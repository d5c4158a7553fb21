"""Code generation: the emitted C (strict C99, no malloc), its header API, reproducible
output, atomic project folders, compile speed of big weight blobs, and the layout
helpers the emitters share."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from onnx2mcu.build import compile_model
from onnx2mcu.codegen.context import (bc_view, broadcast_strides, c_float, simplify_strided)
from onnx2mcu.codegen.generate import c_support
from onnx2mcu.errors import UserError
from onnx2mcu.frontend import load
from onnx2mcu.codegen.emit.reduce import reduce_view
from onnx2mcu.runner import run_project_dir
from onnx2mcu.simulator.run_c import build

HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
HAVE_ARM = shutil.which("arm-none-eabi-gcc") is not None
HAVE_QEMU = HAVE_ARM and shutil.which("qemu-system-arm") is not None
needs_host = pytest.mark.skipif(not HAVE_HOST, reason="gcc / make not installed")
needs_arm = pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc not installed")
needs_qemu = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-arm not installed")

GENERATED = ("model.c", "model.h", "model_weights.h", "main.c")


def synthetic_model() -> onnx.ModelProto:
    """Many kinds of steps in one graph: float, int64 and bool tensors, broadcasting,
    data movement, a variadic op that can run in place, an alias, a constant output,
    Dropout's mask."""
    rng = np.random.default_rng(1)
    inits = [
        nh.from_array(rng.standard_normal((10, 5)).astype(np.float32), "table"),
        nh.from_array(rng.standard_normal((5,)).astype(np.float32), "bias"),
        nh.from_array(rng.standard_normal((7, 20)).astype(np.float32), "w2"),
        nh.from_array(rng.standard_normal((7,)).astype(np.float32), "bias7"),
        nh.from_array(np.array([2, 3, 4, 5], np.int64), "shape4"),
        nh.from_array(np.array([0, 1], np.int64), "starts"),
        nh.from_array(np.array([2, 3], np.int64), "ends"),
        nh.from_array(np.array([1, 2], np.int64), "axes12"),
        nh.from_array(np.array([0, 0, 1, 2, 0, 0, 1, 0], np.int64), "pads"),
        nh.from_array(np.array([3, 3], np.int64), "split"),
        nh.from_array(np.array([1, 2, 1, 1], np.int64), "reps"),
        nh.from_array(np.ones((2, 3), np.int64), "ones_i64"),
        nh.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "konst"),
        nh.from_array(np.array([-1, 20], np.int64), "flat_shape"),
    ]
    n = h.make_node
    nodes = [
        n("Relu", ["x"], ["a"]), n("Sigmoid", ["a"], ["b"]), n("Add", ["a", "b"], ["c"]),
        n("Sum", ["a", "b", "c"], ["sum3"]),
        n("Transpose", ["sum3"], ["t"], perm=[0, 2, 1, 3]),
        n("Slice", ["t", "starts", "ends", "axes12"], ["sl"]),
        n("Pad", ["x", "pads"], ["pd"], mode="reflect"),
        n("Concat", ["x", "x"], ["cat"], axis=1),
        n("Split", ["cat", "split"], ["sp1", "sp2"], axis=1),
        n("Expand", ["bias", "shape4"], ["ex"]),
        n("Mul", ["ex", "sp1"], ["mul"]),
        n("Tile", ["mul", "reps"], ["tile"]),
        n("Gather", ["table", "ids"], ["g"], axis=0),
        n("Add", ["ids", "ones_i64"], ["ids2"]),
        n("Less", ["ids", "ids2"], ["lt"]),
        n("Cast", ["lt"], ["ltf"], to=T.FLOAT),
        n("Cast", ["ids2"], ["idsf"], to=T.FLOAT),
        n("Where", ["mask", "a", "b"], ["w"]),
        n("ReduceMean", ["w"], ["rm"], axes=[3], keepdims=0),
        n("Softmax", ["rm"], ["sm"], axis=-1),
        n("Reshape", ["sp2", "flat_shape"], ["flat"]),
        n("Gemm", ["flat", "w2", "bias7"], ["gemm"], transB=1, alpha=0.5),
        n("Identity", ["konst"], ["kout"]),
        n("Dropout", ["gemm"], ["drop", "dmask"]),
    ]
    inputs = [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 4, 5]),
              h.make_tensor_value_info("ids", T.INT64, [2, 3]),
              h.make_tensor_value_info("mask", T.BOOL, [2, 3, 4, 5])]
    outs = [("sl", T.FLOAT), ("pd", T.FLOAT), ("tile", T.FLOAT), ("g", T.FLOAT), ("ltf", T.FLOAT),
            ("idsf", T.FLOAT), ("sm", T.FLOAT), ("kout", T.FLOAT), ("drop", T.FLOAT),
            ("dmask", T.BOOL), ("lt", T.BOOL), ("ids2", T.INT64)]
    outputs = [h.make_tensor_value_info(name, t, None) for name, t in outs]
    graph = h.make_graph(nodes, "synthetic", inputs, outputs, inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def _unary_model(op_type: str, name: str = "one_op", count: int = 1,
                 elem: int = T.FLOAT) -> onnx.ModelProto:
    nodes, previous = [], "x"
    for i in range(count):
        nodes.append(h.make_node(op_type, [previous], [f"y{i}"], name=f"{op_type.lower()}_{i}"))
        previous = f"y{i}"
    graph = h.make_graph(nodes, name, [h.make_tensor_value_info("x", elem, [4, 8])],
                         [h.make_tensor_value_info(previous, elem, [4, 8])])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _python_only_model(count: int = 1) -> onnx.ModelProto:
    """int64 Sign: the simulator runs it, no C kernel does (only float32 Sign has one)."""
    return _unary_model("Sign", count=count, elem=T.INT64)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def synthetic_project(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("codegen") / "synthetic"
    compile_model(synthetic_model(), out, board="mps2-an386")
    return out


# ----- reproducible, atomic ------------------------------------------------------------
def test_compile_is_byte_identical_twice(tmp_path, synthetic_project):
    again = tmp_path / "again"
    time.sleep(1.1)  # a timestamp anywhere would now differ
    compile_model(synthetic_model(), again, board="mps2-an386")
    first, second = _files(synthetic_project), _files(again)
    assert sorted(first) == sorted(second)
    different = [name for name in first if first[name] != second[name]]
    assert not different, f"differ between two compiles: {different}"


def test_compile_is_byte_identical_across_processes(tmp_path, synthetic_project):
    """Another interpreter with another string-hash seed writes the same bytes."""
    script = ("import sys; sys.path.insert(0, sys.argv[1])\n"
              "from test_codegen import synthetic_model\n"
              "from onnx2mcu.build import compile_model\n"
              "compile_model(synthetic_model(), sys.argv[2], board='mps2-an386')\n")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    proc = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent),
                           str(tmp_path / "other")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert _files(tmp_path / "other") == _files(synthetic_project)


def test_failed_compile_leaves_no_folder(tmp_path):
    model = _python_only_model(count=2)
    out = tmp_path / "out"
    with pytest.raises(UserError) as info:
        compile_model(model, out)
    message = str(info.value)
    assert "sign_0" in message and "sign_1" in message, "every unsupported node is listed at once"
    assert "cannot be compiled to C" in message
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_compile_keeps_the_previous_folder(tmp_path):
    out = tmp_path / "out"
    compile_model(_unary_model("Relu"), out)
    before = _files(out)
    with pytest.raises(UserError):
        compile_model(_python_only_model(), out)
    assert _files(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_recompile_replaces_our_files_and_keeps_the_users(tmp_path):
    out = tmp_path / "out"
    compile_model(_unary_model("Relu"), out)
    (out / "mine.txt").write_text("the user's")
    compile_model(_unary_model("Tanh"), out)
    assert (out / "mine.txt").read_text() == "the user's", "a file we did not write is never deleted"
    assert "o2m_tanh_f32" in (out / "model.c").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# ----- what the generated C looks like -------------------------------------------------
def test_header_api(tmp_path):
    out = tmp_path / "net"
    result = compile_model(synthetic_model(), out, prefix="net")
    header = (out / "net.h").read_text()
    report = json.loads((out / "report.json").read_text())
    assert f"#define NET_ARENA_BYTES {result.schedule.arena_bytes}u" in header
    assert f"#define NET_WEIGHTS_BYTES {report['weights_bytes']}u" in header
    assert f"#define NET_PEAK_BYTES {result.schedule.peak_bytes}u" in header
    assert "#define NET_NUM_INPUTS 3" in header and "#define NET_NUM_OUTPUTS 12" in header
    assert re.search(r"int net_run\(const float \*io_x, const int64_t \*io_ids, "
                     r"const uint8_t \*io_mask, float \*io_sl,", header)
    assert (out / "net.c").exists() and (out / "net_weights.h").exists()


@needs_host
def test_header_macros_compile(tmp_path, synthetic_project):
    """A user's program can size its buffers from the header's macros."""
    program = tmp_path / "user.c"
    program.write_text('#include "model.h"\n'
                       "static float in0[MODEL_INPUT0_SIZE];\n"
                       "static char arena_known[MODEL_ARENA_BYTES > 0u ? 1 : -1];\n"
                       "static char weights_known[MODEL_WEIGHTS_BYTES > 0u ? 1 : -1];\n"
                       "int main(void) { return (int)(sizeof in0 + sizeof arena_known"
                       " + sizeof weights_known) == 0; }\n")
    proc = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
                           f"-I{synthetic_project}", "-c", str(program), "-o",
                           str(tmp_path / "user.o")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_no_dynamic_memory(synthetic_project):
    forbidden = re.compile(r"\b(malloc|calloc|realloc|free|alloca)\s*\(")
    for path in sorted(synthetic_project.glob("*.[ch]")):
        text = path.read_text()
        if path.name in ("o2m_io.c", "startup.c"):  # the harness / board runtime, not the model
            continue
        assert not forbidden.search(text), f"{path.name} allocates"
    model_c = (synthetic_project / "model.c").read_text()
    assert "static union" in model_c  # the one static arena


def test_generated_sources_are_listed_in_the_makefile(synthetic_project):
    makefile = (synthetic_project / "Makefile").read_text()
    report = json.loads((synthetic_project / "report.json").read_text())
    for source in ["model.c", "main.c", *report["kernels"]]:
        assert source in makefile
        assert (synthetic_project / source).exists()


# ----- it compiles strictly and computes the right thing --------------------------------
@needs_host
def test_synthetic_model_on_host(synthetic_project):
    data = run_project_dir(str(synthetic_project), "host")
    assert data["max_scaled_err"] <= 1e-5
    assert data["outputs"]["kout"].tolist() == [[0, 1, 2], [3, 4, 5]]  # a constant output
    assert data["outputs"]["dmask"].all()


@needs_arm
def test_synthetic_model_builds_for_cortex_m4(synthetic_project):
    """The board Makefile compiles with -std=c99 -Wall -Wextra -Werror -pedantic."""
    assert "-Werror -pedantic" in (synthetic_project / "Makefile").read_text()
    assert build(synthetic_project, "mps2-an386").is_file()


@needs_qemu
def test_synthetic_model_under_qemu(synthetic_project):
    data = run_project_dir(str(synthetic_project), "qemu")
    assert data["max_scaled_err"] <= 1e-5


# ----- big weight blobs compile fast ------------------------------------------------------
def _make_timed(folder: Path) -> tuple[float, float]:
    """Run make in `folder`; (seconds, peak RSS in MB of the compilers it ran)."""
    script = ("import resource, subprocess, sys, time\n"
              "t = time.perf_counter()\n"
              "p = subprocess.run(['make', '-C', sys.argv[1], '-j2'], capture_output=True, text=True)\n"
              "sys.stderr.write(p.stderr[-2000:])\n"
              "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
              "sys.exit(p.returncode)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    seconds, rss_kb = proc.stdout.split()
    return float(seconds), int(rss_kb) / 1024


def _matmul_model(n_in: int, n_out: int) -> onnx.ModelProto:
    w = np.random.default_rng(0).standard_normal((n_in, n_out)).astype(np.float32)
    graph = h.make_graph([h.make_node("MatMul", ["x", "w"], ["y"])], "big_weights",
                         [h.make_tensor_value_info("x", T.FLOAT, [1, n_in])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, n_out])],
                         [nh.from_array(w, "w")])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@needs_arm
def test_four_megabytes_of_weights_compile_fast(tmp_path, capsys):
    """1M float weights (4 MB): onnx2mcu compile + the board build take well under a minute
    and the compiler stays far below 2 GB."""
    model = _matmul_model(1000, 1000)
    start = time.perf_counter()
    result = compile_model(model, tmp_path / "big", board="mps2-an386")
    generate_s = time.perf_counter() - start
    assert result.report["weights_bytes"] == 4_000_000
    build_s, rss_mb = _make_timed(tmp_path / "big")
    with capsys.disabled():
        print(f"\n4 MB weights: onnx2mcu compile {generate_s:.1f} s, arm-none-eabi build "
              f"{build_s:.1f} s, compiler peak RSS {rss_mb:.0f} MB")
    assert generate_s + build_s < 30
    assert rss_mb < 2048
    if HAVE_HOST:
        data = run_project_dir(str(tmp_path / "big"), "host")
        assert data["max_scaled_err"] <= 1e-5


# ----- emitter support and layout helpers -------------------------------------------------
def test_c_support_lists_the_unsupported_nodes():
    graph = load(_python_only_model(count=3))
    problems = c_support(graph)
    assert len(problems) == 3 and all("Sign" in p for p in problems)
    assert c_support(load(_unary_model("Relu", count=3))) == []


def test_c_float_reads_back_exactly():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(2000).astype(np.float32),
                             (rng.standard_normal(200) * 1e30).astype(np.float32),
                             np.array([1e-45, -3e-39, 1.17549435e-38, 3.4028235e38, 0.1, 1 / 3,
                                       16777217.0, 0.0, -0.0], np.float32)])
    for value in values:
        text = c_float(value)
        assert text.endswith("f")
        parsed = float.fromhex(text[:-1]) if "0x" in text else float(text[:-1])
        assert np.float32(parsed) == value and np.signbit(np.float32(parsed)) == np.signbit(value)
    assert c_float(np.inf) == "INFINITY" and c_float(-np.inf) == "-INFINITY"
    assert c_float(np.nan) == "NAN"


def test_simplify_strided_merges_and_drops():
    # a dense [2, 1, 3, 4] copy is one run of 24
    assert simplify_strided([2, 1, 3, 4], [[12, 12, 4, 1], [12, 12, 4, 1]]) == ([24], [[1], [1]])
    # broadcast operand: the broadcast dim cannot merge with its neighbours
    dims, strides = simplify_strided([2, 3, 4], [[12, 4, 1], [0, 4, 1]])
    assert dims == [2, 12] and strides == [[12, 1], [0, 1]]


def test_broadcast_views():
    assert broadcast_strides([3, 1], [2, 3, 4]) == [0, 1, 0]
    assert bc_view([3, 1], [2, 3, 4]) == (2, 3, 4)  # per-channel
    assert bc_view([4], [2, 3, 4]) == (6, 4, 1)  # last axis
    assert bc_view([1], [2, 3, 4]) == (1, 1, 24)  # scalar
    assert bc_view([1, 3, 1, 1], [1, 3, 5, 5]) == (1, 3, 25)  # NCHW bias
    assert bc_view([2, 1, 4], [2, 3, 4]) is None  # two runs: needs the _nd form


def test_reduce_views():
    assert reduce_view([2, 3, 4], {1}) == (2, 3, 4)
    assert reduce_view([2, 1, 4], {0, 2}) == (1, 8, 1)  # adjacent once size-1 dims go
    assert reduce_view([2, 3, 4], {0, 2}) is None
    assert reduce_view([1, 3, 1], {0, 2}) == (3, 1, 1)  # nothing to reduce


def test_prefix_must_not_clash_with_project_files(tmp_path):
    with pytest.raises(UserError, match="clash"):
        compile_model(_unary_model("Relu"), tmp_path / "out", prefix="main")
    assert not (tmp_path / "out").exists()
