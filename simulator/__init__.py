"""simulator: numpy execution over the planned arena, and comparison with onnxruntime."""
from onnx2mcu.simulator.execute import SimResult, simulate

__all__ = ["SimResult", "simulate"]
