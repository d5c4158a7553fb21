"""graph_opt: IR -> IR rewrites (see pipeline.py)."""
from onnx2mcu.graph_opt.pipeline import OptimizeOptions, optimize

__all__ = ["OptimizeOptions", "optimize"]
