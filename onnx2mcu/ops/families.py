"""Imports every op family module so that each registers its ops."""
from onnx2mcu.ops import elementwise  # noqa: F401
from onnx2mcu.ops import linalg  # noqa: F401
