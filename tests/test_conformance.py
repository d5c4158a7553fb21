"""ONNX backend node conformance: run every case we support through the
frontend, the scheduler and the arena simulator, and compare with the
expected outputs shipped with the case.

A case is *selected* when
  * every graph input and output has a dtype the IR holds,
  * every node's (domain, op_type) is registered (Constant nodes become
    initializers in the frontend, so they need no op),
  * after loading, no node is rejected by its op's `check` or dtypes.
An exception while loading a case whose ops are all registered is a failure
of that case, not a deselection; the exceptions are the frontend's UserErrors
for what the IR does not hold by design: an intermediate tensor of another
dtype (float16, double...), zero-sized inputs and blocked quantization.

The IR has static shapes, so values that decide a shape (Reshape's `shape`,
Slice's `starts`, Reduce's `axes`... : the positions an op lists in its
`extra["shape_inputs"]`) are compile-time constants in any model we compile.
The ONNX cases often feed them as graph inputs; such inputs are bound to
their test values as initializers before loading ("frozen"), which is what
a user's exporter does.

Run `python tests/test_conformance.py` to list why the other cases are not selected.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from onnx2mcu.errors import UserError
from onnx2mcu.frontend import load
from onnx2mcu.ops import lookup, unsupported_reason
from onnx2mcu.scheduler import schedule
from onnx2mcu.simulator.execute import simulate

NODE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "onnx-node-tests" / "node"
MIN_SELECTED = 300

SUPPORTED_ELEM_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.UINT8, onnx.TensorProto.INT8,
                        onnx.TensorProto.INT32, onnx.TensorProto.INT64, onnx.TensorProto.BOOL}
FRONTEND_HANDLED = {("", "Constant")}  # turned into initializers before anything runs

# Cases whose ops are all supported but which cannot match, each with its reason.
# They are not selected; test_known_bad_case_still_fails (strict xfail) says when
# one starts to pass, so that it is taken off this list.
KNOWN_BAD: dict[str, str] = {
    # the expected values are literals rounded to 4 decimals (0.1511 for 0.151056,
    # which onnxruntime computes too): off by more than rtol
    "test_averagepool_2d_ceil_last_window_starts_on_pad":
        "expected output rounded in the ONNX test",
    # onnx shape inference fails inside MeanVarianceNormalization's function body when
    # `axes` is left at its default (the body's Constant references the absent attribute)
    "test_mvn": "ONNX shape inference fails on the MVN function with default axes",
}

SHAPE_ONLY = {"Shape", "Size"}  # read only their input's (static) shape, not its values
RTOL, ATOL = 1e-4, 1e-5


@dataclass
class Case:
    name: str
    folder: Path
    selected: bool
    reason: str = ""  # why not selected
    graph: object = None
    inputs: dict | None = None
    error: BaseException | None = None  # load failure of a selected case


def _read_pb(path: Path) -> np.ndarray:
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


def _data_files(folder: Path, kind: str) -> list[Path]:
    files = list((folder / "test_data_set_0").glob(f"{kind}_*.pb"))
    return sorted(files, key=lambda p: int(p.stem.split("_")[1]))


def _examine(folder: Path) -> Case:
    name = folder.name
    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    inits = {init.name for init in model.graph.initializer}
    runtime_inputs = [i for i in model.graph.input if i.name not in inits]
    for info in list(runtime_inputs) + list(model.graph.output):
        if not info.type.HasField("tensor_type"):
            return Case(name, folder, False, f"'{info.name}' is not a tensor")
        elem = info.type.tensor_type.elem_type
        if elem not in SUPPORTED_ELEM_TYPES:
            return Case(name, folder, False,
                        f"dtype {onnx.TensorProto.DataType.Name(elem)} of '{info.name}'")
    missing = sorted({n.op_type for n in model.graph.node
                      if ("" if n.domain == "ai.onnx" else n.domain, n.op_type)
                      not in FRONTEND_HANDLED
                      and lookup(n.op_type, n.domain) is None})
    if missing:
        return Case(name, folder, False, "ops not registered: " + ",".join(missing))
    arrays = [_read_pb(p) for p in _data_files(folder, "input")]
    names = [i.name for i in runtime_inputs]
    inputs = dict(zip(names, arrays))
    _freeze_shape_inputs(model, inputs)
    shapes = {k: v.shape for k, v in inputs.items()}
    try:
        graph = load(model, input_shapes=shapes, check=False)
    except Exception as exc:  # noqa: BLE001 - a failure of the case unless by design
        return _load_failure(name, folder, inputs, exc)
    for node in graph.nodes:
        reason = unsupported_reason(node, graph)
        if reason is not None:
            return Case(name, folder, False, f"{node.op_type}: {reason}")
    # check=False is lenient (placeholders for unknown shapes and dtypes, as
    # `inspect` wants): the strict load is what compiling the case would do
    try:
        graph = load(model, input_shapes=shapes, check=True)
    except Exception as exc:  # noqa: BLE001
        return _load_failure(name, folder, inputs, exc)
    return Case(name, folder, True, graph=graph, inputs=inputs)


def _load_failure(name: str, folder: Path, inputs: dict, exc: Exception) -> Case:
    """Loading raised: a deselection for what the IR does not hold by design, else a failure."""
    if isinstance(exc, UserError) and "has dtype" in str(exc):
        return Case(name, folder, False, f"intermediate dtype: {exc}")
    if isinstance(exc, UserError) and "must be positive" in str(exc):
        return Case(name, folder, False, f"zero-sized input: {exc}")
    if isinstance(exc, UserError) and "blocked quantization" in str(exc):  # validate.check_quantized_types
        return Case(name, folder, False, f"refused quantization: {exc}")
    return Case(name, folder, True, inputs=inputs, error=exc)


def _freeze_shape_inputs(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> None:
    """Turn graph inputs that decide a shape into initializers (see module doc).

    Follows producers backwards from every shape-deciding input position, so
    that an input reaching e.g. Range through a Cast and a Div is frozen too
    (but not through Shape/Size, which read only the static shape).
    """
    producer = {out: node for node in model.graph.node for out in node.output if out}
    pending = []
    for node in model.graph.node:
        op = lookup(node.op_type, node.domain)
        for position in op.extra.get("shape_inputs", ()) if op is not None else ():
            if position < len(node.input) and node.input[position]:
                pending.append(node.input[position])
    seen, frozen = set(), set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in inputs:
            frozen.add(name)
        elif name in producer and producer[name].op_type not in SHAPE_ONLY:
            pending.extend(i for i in producer[name].input if i)
    for name in sorted(frozen):
        model.graph.initializer.append(numpy_helper.from_array(inputs.pop(name), name))
    kept = [info for info in model.graph.input if info.name not in frozen]
    del model.graph.input[:]
    model.graph.input.extend(kept)


def discover() -> list[Case]:
    if not NODE_DIR.is_dir():
        return []
    return [_examine(folder) for folder in sorted(NODE_DIR.iterdir())
            if (folder / "model.onnx").is_file()]


CASES = discover()
SELECTED = [case for case in CASES if case.selected and case.name not in KNOWN_BAD]
KNOWN_BAD_CASES = [case for case in CASES if case.name in KNOWN_BAD]

pytestmark = pytest.mark.skipif(not NODE_DIR.is_dir(),
                                reason=f"ONNX node conformance cases not found at {NODE_DIR}")


def test_enough_cases_selected():
    assert len(SELECTED) >= MIN_SELECTED, f"only {len(SELECTED)} conformance cases selected"


@pytest.mark.parametrize("case", SELECTED, ids=[case.name for case in SELECTED])
def test_conformance_case(case: Case):
    _run_case(case)


@pytest.mark.parametrize("case", [
    pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BAD[case.name]))
    for case in KNOWN_BAD_CASES], ids=[case.name for case in KNOWN_BAD_CASES])
def test_known_bad_case_still_fails(case: Case):
    """Each KNOWN_BAD case must still fail; once it passes, drop it from the list."""
    assert case.selected, f"no longer selected: {case.reason}"
    _run_case(case)


def test_known_bad_names_exist():
    assert {case.name for case in KNOWN_BAD_CASES} == set(KNOWN_BAD)


def _run_case(case: Case) -> None:
    if case.error is not None:
        raise case.error
    graph = case.graph
    sched = schedule(graph)
    result = simulate(graph, sched, case.inputs)
    expected = [_read_pb(p) for p in _data_files(case.folder, "output")]
    assert len(expected) == len(graph.outputs)
    for name, want in zip(graph.outputs, expected):
        got = result.outputs[name]
        assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
        assert got.dtype == want.dtype, f"{name}: dtype {got.dtype}, expected {want.dtype}"
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=name)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)


if __name__ == "__main__":
    reasons = collections.Counter()
    for case in CASES:
        if not case.selected:
            print(f"{case.name}: {case.reason}")
            reasons[case.reason.split(":")[0]] += 1
    print(f"\n{len(SELECTED)} selected of {len(CASES)}")
    for reason, count in reasons.most_common():
        print(f"{count:5d}  {reason}")
