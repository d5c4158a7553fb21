"""onnx2mcu: ONNX models to plain C99 for microcontrollers.

Kept light on purpose: stages import `onnx2mcu.ir` and must not drag in the
whole pipeline.  The public API lives in `onnx2mcu.api` and is re-exported
lazily.
"""
from onnx2mcu.version import __version__  # noqa: F401


def __getattr__(name: str):
    if name in {"load", "simulate", "compile", "run", "Options"}:
        from onnx2mcu import api

        return getattr(api, name)
    raise AttributeError(name)
