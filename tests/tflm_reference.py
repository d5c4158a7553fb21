"""TFLite Micro's own interpreter (the `tflite-micro` wheel) as a reference runner.

    outs = tflm_outputs("model.tflite", [x])      # list of numpy arrays, in output order

and a small reader of the .tflite flatbuffer (the schema module the wheel
ships) that lists operators, tensors and their quantization, for tests that
rebuild a model from onnx2mcu's int8 references.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

ANCHOR_MODELS = {  # model -> output hex of the anchor input, from ../shared/anchors/README.md
    "mlperf_tiny/kws_ref_model.tflite": "80808080808080808076808a",
    "mlperf_tiny/vww_96_int8.tflite": "7a86",
    "mlperf_tiny/pretrainedResnet_quant.tflite": "8080807f808080808080",
    "mlperf_tiny/ad01_int8.tflite": "c8fe172b272b3140322d2d2c23231e24",  # first 16 of 640 bytes
    "mcunet/mcunet_vww.tflite": "2301bc3f2301bcbf",
}


def have_tflm() -> bool:
    try:
        from tflite_micro.python.tflite_micro import runtime  # noqa: F401
    except ImportError:
        return False
    return True


def tflm_outputs(tflite_path: str | Path, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run one inference with TFLite Micro's interpreter; inputs in the model's input order and dtypes."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(tflite_path))
    for i, x in enumerate(inputs):
        detail = interpreter.get_input_details(i)
        x = np.asarray(x)
        if x.dtype != detail["dtype"]:
            raise TypeError(f"input {i}: dtype {x.dtype}, the model wants {np.dtype(detail['dtype'])}")
        interpreter.set_input(x.reshape(detail["shape"]), i)
    interpreter.invoke()
    count = read_model(tflite_path).subgraph.OutputsLength()  # the wheel reports outputs one index at a time
    return [np.array(interpreter.get_output(i)) for i in range(count)]


def input_details(tflite_path: str | Path) -> list[dict]:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_file(str(tflite_path))
    n = read_model(tflite_path).subgraph.InputsLength()
    return [interpreter.get_input_details(i) for i in range(n)]


def anchor_input(shape, dtype) -> np.ndarray:
    """The anchors' input: byte i = (i*7+3) % 256 as int8, or that byte / 255 for float inputs."""
    count = int(np.prod(shape))
    raw = (np.arange(count, dtype=np.int64) * 7 + 3) % 256
    if np.dtype(dtype) == np.float32:
        return (raw.astype(np.float32) / np.float32(255.0)).reshape(shape)
    if np.dtype(dtype) == np.int8:
        return raw.astype(np.uint8).view(np.int8).reshape(shape)
    if np.dtype(dtype) == np.uint8:
        return raw.astype(np.uint8).reshape(shape)
    raise TypeError(f"no anchor input for dtype {dtype}")


# ----------------------------------------------------------------- flatbuffer reader
def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: np.ndarray | None
    zero_points: np.ndarray | None
    quantized_dimension: int
    data: np.ndarray | None  # constant data (weights, biases, shapes), else None


@dataclass
class Operator:
    op: str
    inputs: list[int]
    outputs: list[int]
    options: dict


@dataclass
class Model:
    subgraph: object
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]


_NP = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
       "FLOAT32": np.float32, "BOOL": np.bool_}


def _options(schema, op) -> dict:
    table = op.BuiltinOptions()
    if table is None:
        return {}
    by_type = {v: k for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_")}
    name = by_type.get(op.BuiltinOptionsType())
    cls = getattr(schema, name, None) if name else None
    if cls is None:
        return {}
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    acts = _enum_names(schema.ActivationFunctionType)
    pads = _enum_names(schema.Padding)
    out = {}
    for attr in ("StrideH", "StrideW", "DilationHFactor", "DilationWFactor", "FilterHeight", "FilterWidth",
                 "DepthMultiplier", "KeepDims", "Beta", "KeepNumDims"):
        if hasattr(obj, attr):
            out[attr] = getattr(obj, attr)()
    if hasattr(obj, "FusedActivationFunction"):
        out["act"] = acts[obj.FusedActivationFunction()]
    if hasattr(obj, "Padding"):
        out["padding"] = pads[obj.Padding()]
    return out


def read_model(tflite_path: str | Path) -> Model:
    schema = _schema()
    model = schema.Model.GetRootAsModel(Path(tflite_path).read_bytes(), 0)
    sg = model.Subgraphs(0)
    ops = _enum_names(schema.BuiltinOperator)
    types = _enum_names(schema.TensorType)
    tensors = []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        dtype = types[t.Type()]
        q = t.Quantization()
        scales = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else None
        zps = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else None
        buf = model.Buffers(t.Buffer())
        data = None
        if buf is not None and buf.DataLength():
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            data = buf.DataAsNumpy().view(_NP[dtype]).reshape(shape)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        tensors.append(Tensor(t.Name().decode(), shape, dtype, scales, zps,
                              q.QuantizedDimension() if q is not None else 0, data))
    operators = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = ops[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        operators.append(Operator(name, [int(v) for v in op.InputsAsNumpy()],
                                  [int(v) for v in op.OutputsAsNumpy()], _options(schema, op)))
    return Model(sg, tensors, operators, [int(v) for v in sg.InputsAsNumpy()],
                 [int(v) for v in sg.OutputsAsNumpy()])
