"""The C emitters, one module per op family; importing this package registers every kernel
(see codegen/kernels.py)."""
from onnx2mcu.codegen.emit import adder  # noqa: F401
from onnx2mcu.codegen.emit import binary  # noqa: F401
from onnx2mcu.codegen.emit import conv  # noqa: F401
from onnx2mcu.codegen.emit import dynquant  # noqa: F401
from onnx2mcu.codegen.emit import elementwise  # noqa: F401
from onnx2mcu.codegen.emit import linalg  # noqa: F401
from onnx2mcu.codegen.emit import mcubert  # noqa: F401
from onnx2mcu.codegen.emit import norm  # noqa: F401
from onnx2mcu.codegen.emit import pool  # noqa: F401
from onnx2mcu.codegen.emit import quant  # noqa: F401
from onnx2mcu.codegen.emit import reduce  # noqa: F401
from onnx2mcu.codegen.emit import shape  # noqa: F401
from onnx2mcu.codegen.emit import recurrent  # noqa: F401
from onnx2mcu.codegen.emit import misc  # noqa: F401
from onnx2mcu.codegen.emit import memrw  # noqa: F401
from onnx2mcu.codegen.emit import int8  # noqa: F401  (last: dispatches to the plain int8 kernels above)
from onnx2mcu.codegen.emit import int8_dsp  # noqa: F401  (the arm-dsp int8 fast paths)
from onnx2mcu.codegen.emit import patch  # noqa: F401  (PatchedChain: patch-based inference)
from onnx2mcu.codegen.emit import rows  # noqa: F401  (TiledRows: last, its inner nodes use every family)
