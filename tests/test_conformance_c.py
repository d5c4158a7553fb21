"""ONNX backend node conformance through the generated C, on the host.

The cases are those of tests/test_conformance.py (same selection, same
frozen shape inputs, same tolerances: rtol 1e-4, atol 1e-5 for floats,
exact for integers and bool), minus those with a node that has no C kernel
(`codegen.generate.c_support` says why; the count is printed in the summary).
Each case is scheduled, rendered (model.c, model.h, model_weights.h and a
main.c holding the case's inputs), compiled with the strict flags of the
board Makefiles (-std=c99 -Wall -Wextra -Werror -pedantic) against the
runtime kernels built once per session into a static library, run, and its
outputs read back bit-exactly.

Speed: rendering runs in the main thread while compiles and runs go to a
pool of 2 threads; the first test submits every collected case of this
module.  Under pytest-xdist (whose workers already run in parallel) each
case is built by its own test.
"""
from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import test_conformance as conf
from onnx2mcu.codegen.generate import c_support, render_model
from onnx2mcu.scheduler import schedule
from onnx2mcu.simulator.run_c import parse_outputs

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_DIR = ROOT / "runtime_c"
BOARD_DIR = ROOT / "codegen" / "board"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffp-contract=off"]
KERNEL_OPT = "-O2"
CASE_OPT = "-O1"  # model.c / main.c only hold calls and tables: -O1 compiles faster
RUN_TIMEOUT = 30.0
HAVE_CC = shutil.which("gcc") is not None and shutil.which("ar") is not None
HAVE_ARM = shutil.which("arm-none-eabi-gcc") is not None



def _select():
    chosen, not_selected = [], collections.Counter()
    for case in conf.SELECTED:
        if case.error is not None:
            not_selected["fails to load (see test_conformance.py)"] += 1
            continue
        problems = c_support(case.graph)
        if problems:
            not_selected[problems[0].split(": ", 1)[-1]] += 1
            continue
        chosen.append(case)
    return chosen, not_selected


C_CASES, NOT_SELECTED = _select()
C_SELECTED = C_CASES
# read by conftest.py's terminal summary
NOT_SELECTED_COUNT = sum(NOT_SELECTED.values())

pytestmark = [
    pytest.mark.skipif(not conf.NODE_DIR.is_dir(),
                       reason=f"ONNX node conformance cases not found at {conf.NODE_DIR}"),
    pytest.mark.skipif(not HAVE_CC, reason="gcc / ar not installed"),
]


# ----- the runtime library, once per session ---------------------------------
@pytest.fixture(scope="session")
def kernel_library(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("c_conformance_lib")
    objects = []
    for source in sorted(RUNTIME_DIR.glob("*.c")) + [BOARD_DIR / "o2m_io.c"]:
        obj = out / (source.stem + ".o")
        _run(["gcc", *STRICT, KERNEL_OPT, f"-I{RUNTIME_DIR}", f"-I{BOARD_DIR}", "-c", str(source),
              "-o", str(obj)])
        objects.append(str(obj))
    library = out / "libo2m.a"
    _run(["ar", "rcs", str(library), *objects])
    return library


def _run(cmd: list[str], timeout: float = 120.0) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}")


# ----- one case: render (main thread), then compile + run (worker) -------------
def render_case(case, folder: Path, board=("portable",)) -> list[str]:
    """Write the case's C files into `folder` (kernels of `board`'s preference); returns the
    output wire names in graph order."""
    sched = schedule(case.graph)
    generated = render_model(case.graph, sched, prefix="model", test_inputs=case.inputs, board=board)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in generated.files.items():
        (folder / name).write_text(text)
    return [entry["wire_name"] for entry in generated.report["c_io"]["outputs"]]


def build_and_run(folder: Path, library: Path) -> dict[str, np.ndarray]:
    app = folder / "app"
    _run(["gcc", *STRICT, CASE_OPT, f"-I{folder}", f"-I{RUNTIME_DIR}", f"-I{BOARD_DIR}",
          str(folder / "main.c"), str(folder / "model.c"), str(library), "-lm", "-o", str(app)])
    proc = subprocess.run([str(app)], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if proc.returncode != 0:
        raise AssertionError(f"{app} exited with {proc.returncode}: {proc.stderr[-400:]}")
    return parse_outputs(proc.stdout)


class _Pool:
    """Renders cases in the calling thread and compiles/runs them on worker threads."""

    def __init__(self, library: Path, root: Path, workers: int):
        self.library, self.root = library, root
        self.executor = ThreadPoolExecutor(max_workers=workers)
        self.futures: dict[str, Future] = {}
        self.wires: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    def submit(self, case) -> None:
        with self.lock:
            if case.name in self.futures:
                return
            folder = self.root / case.name
            try:
                self.wires[case.name] = render_case(case, folder)
            except Exception as exc:  # noqa: BLE001 - reported by the case's own test
                failed: Future = Future()
                failed.set_exception(exc)
                self.futures[case.name] = failed
                return
            self.futures[case.name] = self.executor.submit(build_and_run, folder, self.library)

    def result(self, case) -> tuple[list[str], dict[str, np.ndarray]]:
        self.submit(case)
        outputs = self.futures[case.name].result()
        return self.wires[case.name], outputs


UNDER_XDIST = bool(os.environ.get("PYTEST_XDIST_WORKER"))


@pytest.fixture(scope="module")
def pool(request, kernel_library, tmp_path_factory):
    runner = _Pool(kernel_library, tmp_path_factory.mktemp("c_conformance"), 1 if UNDER_XDIST else 2)
    yield runner
    runner.executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def c_outputs(request, pool):
    """Submit every collected case of this module on first use, then wait for this one's.

    Under pytest-xdist each worker collects every case but runs only its share, and the
    workers already run in parallel: each case is then built when its test runs."""
    if not pool.futures and not UNDER_XDIST:
        module = sys.modules[__name__]
        for item in request.session.items:
            if getattr(item, "module", None) is module and hasattr(item, "callspec"):
                case = item.callspec.params.get("case")
                if case is not None:
                    pool.submit(case)
    return pool.result


def _check(case, wires: list[str], outputs: dict[str, np.ndarray]) -> None:
    expected = [conf._read_pb(p) for p in conf._data_files(case.folder, "output")]
    assert len(expected) == len(case.graph.outputs)
    for name, wire, want in zip(case.graph.outputs, wires, expected):
        got = outputs[wire]
        assert got.size == want.size, f"{name}: {got.size} values, expected shape {want.shape}"
        got = got.reshape(want.shape)
        assert got.dtype == want.dtype, f"{name}: dtype {got.dtype}, expected {want.dtype}"
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=conf.RTOL, atol=conf.ATOL, err_msg=name)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)


# ----- tests -------------------------------------------------------------------
def test_enough_cases_run_through_c():
    assert len(C_SELECTED) >= conf.MIN_SELECTED, (
        f"only {len(C_SELECTED)} conformance cases have C kernels for all their nodes; "
        f"not selected: {dict(NOT_SELECTED.most_common(10))}")


@pytest.mark.parametrize("case", C_SELECTED, ids=[case.name for case in C_SELECTED])
def test_conformance_c_case(case, c_outputs):
    wires, outputs = c_outputs(case)
    _check(case, wires, outputs)



FLOAT_CONV_CASES = [case for case in C_SELECTED if any(
    n.op_type == "Conv" and case.graph.tensors[n.inputs[0]].dtype.value == "float32" for n in case.graph.nodes)]


@pytest.mark.parametrize("case", FLOAT_CONV_CASES, ids=[case.name for case in FLOAT_CONV_CASES])
def test_float_conv_cases_with_the_fast_kernels(case, kernel_library, tmp_path):
    """The float Conv cases again with a Cortex-M4's kernel preference (arm-dsp: the
    register-tiled and fused depthwise calls of codegen/emit/conv.py conv_function)."""
    wires = render_case(case, tmp_path, board=("arm-dsp", "portable"))
    model_c = (tmp_path / "model.c").read_text()
    assert "o2m_conv2d_tiled_f32(" in model_c or "o2m_conv2d_depthwise_tiled_f32(" in model_c
    assert "o2m_conv2d_f32(" not in model_c
    _check(case, wires, build_and_run(tmp_path, kernel_library))


def test_fast_conv_cases_exist():
    assert len(FLOAT_CONV_CASES) >= 6  # the ONNX Conv node cases (padding, autopad, strides)


@pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc not installed")
def test_generated_c_compiles_for_cortex_m4(tmp_path):
    """model.c also passes arm-none-eabi-gcc's strict checks (int32_t is `long` there, which
    host gcc would not notice), for a set of cases covering every (op, dtype) pair."""
    def pairs(case) -> set:
        return {(n.op_type, case.graph.tensors[next(o for o in n.outputs if o)].dtype.value,
                 case.graph.tensors[n.inputs[0]].dtype.value if n.inputs and n.inputs[0] else "")
                for n in case.graph.nodes}
    uncovered = set().union(*(pairs(case) for case in C_SELECTED))
    sample = []
    while uncovered:  # greedy set cover
        best = max(C_SELECTED, key=lambda case: len(pairs(case) & uncovered))
        sample.append(best)
        uncovered -= pairs(best)
    flags = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", *STRICT,
             "-fsyntax-only"]
    procs = []
    for case in sample:
        folder = tmp_path / case.name
        render_case(case, folder)
        procs.append(subprocess.Popen(
            ["arm-none-eabi-gcc", *flags, f"-I{folder}", f"-I{RUNTIME_DIR}", f"-I{BOARD_DIR}",
             str(folder / "model.c"), str(folder / "main.c")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        if len(procs) >= 2:  # two compilers at a time
            _finish(procs.pop(0))
    for proc in procs:
        _finish(proc)
    assert len(sample) >= 20


def _finish(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"{' '.join(proc.args)}\n{out}"
