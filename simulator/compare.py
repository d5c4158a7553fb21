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
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise UserError(f"{path}: inputs file not found") from None
    except Exception as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from None


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


@dataclass
class Agreement:
    max_abs_err: float
    max_rel_err: float
    per_output: dict[str, tuple[float, float]]


def compare(ours: Mapping[str, np.ndarray], theirs: Mapping[str, np.ndarray]) -> Agreement:
    """max |ours - theirs| and that over max |theirs|, over all outputs."""
    per_output = {}
    worst_abs, worst_ref = 0.0, 0.0
    for name, expected in theirs.items():
        got = np.asarray(ours[name])
        expected = np.asarray(expected)
        if got.shape != expected.shape:
            raise AssertionError(f"output {name}: shape {got.shape} vs onnxruntime {expected.shape}")
        if expected.dtype == np.bool_ or got.dtype == np.bool_:
            diff = float(np.count_nonzero(got != expected))
            scale = 1.0
        else:
            diff = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64)), initial=0.0))
            scale = float(np.max(np.abs(expected.astype(np.float64)), initial=0.0))
        per_output[name] = (diff, diff / scale if scale else diff)
        worst_abs = max(worst_abs, diff)
        worst_ref = max(worst_ref, scale)
    rel = max((r for _, r in per_output.values()), default=0.0)
    return Agreement(worst_abs, rel, per_output)
