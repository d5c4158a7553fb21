"""Reading and checking an ONNX file, with one clear error per way it can be bad."""
from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from onnx2mcu.errors import UserError
from onnx2mcu.frontend.validate import check_path, validate_model

MIN_OPSET = 13
"""Older default-domain opsets are converted up to this one first."""


def read_model(model: str | os.PathLike | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """Return (model, label used in messages); checks it and lifts old opsets."""
    if isinstance(model, onnx.ModelProto):
        proto, label = model, model.graph.name or "<model>"
        validate_model(proto, label, None)
    else:
        path = check_path(model)
        label = str(path)
        try:
            if not path.exists():
                raise UserError(f"{label}: file not found; give the path of an .onnx model")
            if path.is_dir():
                raise UserError(f"{label}: is a folder, not an .onnx file")
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"{label}: cannot read the model ({exc.strerror or exc})") from None
        if not data:
            raise UserError(f"{label}: file is empty; re-export the model")
        try:
            proto = onnx.load_from_string(data)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise UserError(f"{label}: not a readable ONNX model ({_first_line(exc)}); "
                            "the file may be truncated or of another format") from None
        if proto.ByteSize() == 0 or not proto.HasField("graph") or not proto.graph.node:
            raise UserError(f"{label}: not an ONNX model (no graph inside); "
                            "the file may be truncated or of another format")
        validate_model(proto, label, path.parent)
        if _uses_external_data(proto):
            try:
                onnx.load_external_data_for_model(proto, str(path.parent))
            except (OSError, ValueError) as exc:
                raise UserError(f"{label}: external weight data missing ({_first_line(exc)}); "
                                "keep the .data file next to the model") from None
    try:
        onnx.checker.check_model(proto)
    except (onnx.checker.ValidationError, ValueError, RuntimeError, TypeError) as exc:
        raise UserError(f"{label}: invalid ONNX model: {_first_line(exc)}") from None
    return _lift_opset(proto, label), label


def _uses_external_data(proto: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)


def default_opset(proto: onnx.ModelProto) -> int:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return MIN_OPSET


def _lift_opset(proto: onnx.ModelProto, label: str) -> onnx.ModelProto:
    if default_opset(proto) >= MIN_OPSET:
        return proto
    try:
        from onnx import version_converter

        return version_converter.convert_version(proto, MIN_OPSET)
    except Exception as exc:  # the converter raises bare RuntimeErrors
        raise UserError(f"{label}: opset {default_opset(proto)} could not be converted to "
                        f"{MIN_OPSET} ({_first_line(exc)}); re-export with opset >= {MIN_OPSET}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
