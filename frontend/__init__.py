"""frontend: ONNX -> IR (see convert.load)."""
from onnx2mcu.frontend.convert import load

__all__ = ["load"]
