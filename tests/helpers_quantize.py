"""onnxruntime's `quantize_static` (QDQ format) on float models, for the tests.

A QDQ model written by onnxruntime's own quantizer is the other common int8 input besides
tf2onnx's (tests/test_int8_models.py): QuantizeLinear/DequantizeLinear around every op it
quantizes, int8 or uint8 activations, int8 or uint8 weights, per-tensor or per-channel,
symmetric or not (its extra_options ActivationSymmetric / WeightSymmetric).  Calibration
reads seeded random inputs, so the quantized model is the same on every run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx


@dataclass(frozen=True)
class QConfig:
    """One quantize_static configuration."""

    name: str
    activation: str  # "QInt8" | "QUInt8"
    weight: str  # "QInt8" | "QUInt8"
    per_channel: bool
    activation_symmetric: bool
    weight_symmetric: bool


CONFIGS = {
    "s8-perchannel-sym": QConfig("s8-perchannel-sym", "QInt8", "QInt8", True, True, True),
    "u8-pertensor-asym": QConfig("u8-pertensor-asym", "QUInt8", "QUInt8", False, False, False),
    "s8-pertensor-asym": QConfig("s8-pertensor-asym", "QInt8", "QInt8", False, False, False),
    "u8s8-perchannel": QConfig("u8s8-perchannel", "QUInt8", "QInt8", True, False, True),
}


def fix_batch(model: onnx.ModelProto, batch: int = 1) -> onnx.ModelProto:
    """Bind a symbolic leading dim of the graph inputs and outputs to `batch` (the calibration
    runs one sample at a time) and drop stale value_info."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].Clear()
            dims[0].dim_value = batch
    del model.graph.value_info[:]
    return model


def random_feed(session_inputs, rng: np.random.Generator, vocab: int = 1000) -> dict[str, np.ndarray]:
    """One seeded input per graph input: floats in [0, 1), token ids below `vocab`, masks of ones."""
    feed = {}
    for item in session_inputs:
        shape = [d if isinstance(d, int) else 1 for d in item.shape]
        if item.type == "tensor(float)":
            feed[item.name] = rng.random(shape, dtype=np.float32)
        elif "mask" in item.name:
            feed[item.name] = np.ones(shape, np.int64)
        else:
            feed[item.name] = rng.integers(0, vocab, shape).astype(np.int64)
    return feed


def quantize(float_model: Path | onnx.ModelProto, out: Path, config: QConfig, samples: int = 8,
             seed: int = 0, vocab: int = 1000, op_types=None, qoperator: bool = False) -> Path:
    """quantize_static of a float model with `samples` seeded random calibration inputs: the QDQ
    format, or with `qoperator` the QOperator one (QLinearMatMul, com.microsoft QLinearAdd...)."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model = float_model if isinstance(float_model, onnx.ModelProto) else onnx.load(str(float_model))
    model = fix_batch(model)
    source = out.with_suffix(".float.onnx")
    onnx.save(model, str(source))
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    feeds = [random_feed(session.get_inputs(), rng, vocab) for _ in range(samples)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    extra = {"ActivationSymmetric": config.activation_symmetric, "WeightSymmetric": config.weight_symmetric}
    quantize_static(str(source), str(out), Reader(),
                    quant_format=QuantFormat.QOperator if qoperator else QuantFormat.QDQ,
                    activation_type=getattr(QuantType, config.activation),
                    weight_type=getattr(QuantType, config.weight), per_channel=config.per_channel,
                    op_types_to_quantize=op_types, extra_options=extra)
    source.unlink()
    return out
