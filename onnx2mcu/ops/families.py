"""Imports every op family module so that each registers its ops."""
from onnx2mcu.ops import conv  # noqa: F401
from onnx2mcu.ops import integer  # noqa: F401
from onnx2mcu.ops import elementwise  # noqa: F401
from onnx2mcu.ops import linalg  # noqa: F401
from onnx2mcu.ops import mcubert  # noqa: F401
from onnx2mcu.ops import norm  # noqa: F401
from onnx2mcu.ops import pool  # noqa: F401
from onnx2mcu.ops import quant  # noqa: F401
from onnx2mcu.ops import reduce  # noqa: F401
from onnx2mcu.ops import resize  # noqa: F401
from onnx2mcu.ops import shape  # noqa: F401
from onnx2mcu.ops import binary  # noqa: F401
from onnx2mcu.ops import adder  # noqa: F401
from onnx2mcu.ops import recurrent  # noqa: F401
from onnx2mcu.ops import memrw  # noqa: F401
from onnx2mcu.ops import patch  # noqa: F401
from onnx2mcu.ops import rows  # noqa: F401
