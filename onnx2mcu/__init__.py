"""onnx2mcu: ONNX models to plain C99 for microcontrollers.

Kept light on purpose: stages import `onnx2mcu.ir` and must not drag in the
whole pipeline.  The public API lives in `onnx2mcu.api` and is re-exported
lazily.
"""
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in {"load", "simulate", "compile", "run", "Options"}:
        from onnx2mcu import api

        return getattr(api, name)
    raise AttributeError(name)
