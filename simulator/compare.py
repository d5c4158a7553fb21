"""Inputs for a run, and the comparison of our outputs with onnxruntime's."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import onnx

from onnx2mcu.errors import UserError
from onnx2mcu.ir import DType, Graph
from onnx2mcu.ops import lookup


def seeded_inputs(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic inputs: normal floats; valid indices for inputs that index a table; ones otherwise."""
    rng = np.random.default_rng(seed)
    consumers = graph.consumers()
    values: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        tensor = graph.tensors[name]
        if tensor.dtype is DType.FLOAT32:
            values[name] = rng.standard_normal(tensor.shape).astype(np.float32)
        elif tensor.dtype is DType.BOOL:
            values[name] = rng.random(tensor.shape) < 0.5
        else:
            high = _index_range(graph, name, consumers)
            if high is None:
                values[name] = np.ones(tensor.shape, dtype=tensor.dtype.numpy)
            else:
                values[name] = rng.integers(0, high, tensor.shape).astype(tensor.dtype.numpy)
    return values


def _index_range(graph: Graph, name: str, consumers) -> int | None:
    """Rows of the table `name` indexes (Gather, embedding lookups), if it indexes one."""
    for node in consumers.get(name, []):
        op = lookup(node.op_type, node.domain)
        if op is None or op.index_rows is None:
            continue
        rows = op.index_rows(node, graph)
        for position, n in enumerate(node.inputs):
            if n == name and position in rows:
                return rows[position]
    return None


def read_npz(path) -> dict[str, np.ndarray]:
    """Every array of an .npz, with one clear error when the file is missing or unreadable."""
    try:
        _check_npz_headers(path)
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(f"{path}: inputs file not found") from None
    except Exception as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from None


def _check_npz_headers(path) -> None:
    """Every member's dtype and shape from its .npy header, before numpy allocates it."""
    import zipfile

    from onnx2mcu.frontend.validate import validate_npz_header

    if not zipfile.is_zipfile(path):
        return  # np.load says what it is
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as handle:
                version = np.lib.format.read_magic(handle)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            validate_npz_header(path, info.filename[:-4], shape, dtype)


def load_npz(path: str, graph: Graph) -> dict[str, np.ndarray]:
    """Read inputs from an .npz; names and shapes must match the model's inputs."""
    values = read_npz(path)
    missing = [n for n in graph.inputs if n not in values]
    extra = [k for k in values if k not in graph.inputs]
    if missing or extra:
        raise UserError(f"{path}: inputs do not match the model: missing {missing or 'none'}, "
                        f"unknown {extra or 'none'}; the model's inputs are {graph.inputs}")
    for name in graph.inputs:
        tensor = graph.tensors[name]
        if tuple(values[name].shape) != tensor.shape:
            raise UserError(f"{path}: input '{name}' has shape {list(values[name].shape)}, "
                            f"the model expects {list(tensor.shape)} (bind dims with --input-shape)")
        if values[name].dtype != tensor.dtype.numpy:
            kind = np.dtype(values[name].dtype).kind
            if kind not in "fiub" or (tensor.dtype is DType.FLOAT32) != (kind == "f"):
                raise UserError(f"{path}: input '{name}' has dtype {values[name].dtype}, "
                                f"the model expects {tensor.dtype.value}")
            values[name] = values[name].astype(tensor.dtype.numpy)
    return values


def run_onnxruntime(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray],
                    output_names: list[str]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # beyond basic, onnxruntime rewrites DequantizeLinear+MatMul into quantized kernels whose
    # results drift ~0.5% from the float model we are checking against
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    feed = {i.name: inputs[i.name] for i in session.get_inputs()}
    values = session.run(output_names, feed)
    return dict(zip(output_names, values))


DEFAULT_ATOL = 1e-4
"""Absolute tolerance of float outputs: float32 kernels that sum in another order than
onnxruntime differ by ~1e-6 on outputs of order 1 (numpy allclose semantics:
|ours - theirs| <= atol + rtol * |theirs|)."""
DEFAULT_RTOL = 1e-3
DEFAULT_INT8_TOLERANCE = 0
"""Integer outputs must be exact unless the user allows N least-significant bits."""


@dataclass(frozen=True)
class Tolerance:
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    int_lsb: int = DEFAULT_INT8_TOLERANCE

    def __post_init__(self) -> None:
        for name in ("atol", "rtol", "int_lsb"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise UserError(f"tolerance --{name.replace('_', '-')} must be a finite number >= 0, got {value}")


@dataclass
class OutputAgreement:
    """One output: its worst element and how many elements are outside tolerance."""

    name: str
    dtype: str
    elements: int
    max_abs_err: float  # inf when a NaN/Inf appears on one side only
    max_rel_err: float  # over elements with |theirs| > atol (does not explode on tiny outputs)
    mismatches: int
    worst_index: tuple[int, ...] | None
    ours: float | None
    theirs: float | None
    scaled_err: float = 0.0  # max_abs_err over max |theirs|: the error on the output's own scale

    @property
    def ok(self) -> bool:
        return self.mismatches == 0

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "elements": self.elements,
                "max_abs_err": self.max_abs_err, "max_rel_err": self.max_rel_err,
                "scaled_err": self.scaled_err, "mismatches": self.mismatches, "ok": self.ok,
                "worst_index": list(self.worst_index) if self.worst_index is not None else None,
                "ours": self.ours, "theirs": self.theirs}


@dataclass
class Agreement:
    max_abs_err: float
    max_rel_err: float
    per_output: dict[str, tuple[float, float]]
    outputs: list[OutputAgreement]
    tolerance: Tolerance
    # False when the reference computes other arithmetic than the model asks for (an int8 model
    # under --requant fixed against onnxruntime's float requantization): reported, never a failure
    binding: bool = True
    note: str = ""

    @property
    def max_scaled_err(self) -> float:
        """Worst max_abs_err / max |reference| over the outputs: a one-number summary for
        outputs of order one (it explodes on tiny outputs; the verdict is `ok`)."""
        return max((o.scaled_err for o in self.outputs), default=0.0)

    @property
    def ok(self) -> bool:
        """The allclose verdict over every output."""
        return all(o.ok for o in self.outputs)

    @property
    def passed(self) -> bool:
        """The verdict a run's exit code follows: agreement, or a reference that is not binding."""
        return self.ok or not self.binding

    @property
    def failed(self) -> list[OutputAgreement]:
        return [o for o in self.outputs if not o.ok]

    def to_dict(self) -> dict:
        return {"ok": self.ok, "binding": self.binding, "note": self.note,
                "atol": self.tolerance.atol, "rtol": self.tolerance.rtol,
                "int_tolerance": self.tolerance.int_lsb,
                "outputs": [o.to_dict() for o in self.outputs]}

    def table(self) -> str:
        """One markdown row per output; failed ones name the worst element."""
        lines = ["| output | dtype | max_abs_err | max_rel_err | mismatches | worst element | ours | reference | verdict |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for o in self.outputs:
            where = "-" if o.worst_index is None else str(list(o.worst_index))
            lines.append(f"| {o.name} | {o.dtype} | {o.max_abs_err:.3g} | {o.max_rel_err:.3g} | "
                         f"{o.mismatches} of {o.elements} | {where} | {_num(o.ours)} | {_num(o.theirs)} | "
                         f"{'ok' if o.ok else 'FAIL' if self.binding else 'differs'} |")
        return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def compare_output(name: str, got: np.ndarray, expected: np.ndarray, tol: Tolerance) -> OutputAgreement:
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        raise AssertionError(f"output {name}: shape {got.shape} vs reference {expected.shape}")
    integer = expected.dtype.kind in "iub" and got.dtype.kind in "iub"
    a = got.astype(np.float64)
    b = expected.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(a - b)
        if integer:
            exact = expected.dtype.kind == "b" or got.dtype.kind == "b"
            bad = diff > (0 if exact else tol.int_lsb)
        else:
            finite = np.isfinite(a) & np.isfinite(b)
            # NaN or Inf agree only when both sides have the same value at the same place
            same_special = ~finite & ((np.isnan(a) & np.isnan(b)) | (a == b))
            bad = np.where(finite, diff > tol.atol + tol.rtol * np.abs(b), ~same_special)
            diff = np.where(finite, diff, np.where(same_special, 0.0, np.inf))
        big = np.abs(b) > (0 if integer else tol.atol)
        rel = np.where(big & np.isfinite(b), diff / np.where(big, np.abs(b), 1.0), 0.0)
    max_abs = float(np.max(diff, initial=0.0))
    max_rel = float(np.max(rel, initial=0.0))
    mismatches = int(np.count_nonzero(bad))
    worst = None
    if diff.size:
        flat = int(np.argmax(np.where(bad, diff, -1.0)))
        worst = tuple(int(i) for i in np.unravel_index(flat, diff.shape))
    ours = float(a[worst]) if worst is not None else None
    theirs = float(b[worst]) if worst is not None else None
    scale = float(np.max(np.where(np.isfinite(b), np.abs(b), 0.0), initial=0.0))
    scaled = max_abs / scale if scale else max_abs
    return OutputAgreement(name, str(got.dtype), int(got.size), max_abs, max_rel, mismatches, worst, ours,
                           theirs, scaled)


def compare(ours: Mapping[str, np.ndarray], theirs: Mapping[str, np.ndarray],
            tolerance: Tolerance | None = None) -> Agreement:
    """Every output against the reference with numpy allclose semantics (see Tolerance)."""
    tol = tolerance or Tolerance()
    outputs = [compare_output(name, ours[name], expected, tol) for name, expected in theirs.items()]
    per_output = {o.name: (o.max_abs_err, o.max_rel_err) for o in outputs}
    worst_abs = max((o.max_abs_err for o in outputs), default=0.0)
    worst_rel = max((o.max_rel_err for o in outputs), default=0.0)
    return Agreement(worst_abs, worst_rel, per_output, outputs, tol)
