"""Operator definitions (see registry.py): one place per op for all stages."""
from onnx2mcu.ops.registry import (OpDef, all_ops, lookup, node_scratch_bytes, register,
                                   unsupported_reason)
from onnx2mcu.ops import families  # noqa: E402,F401  (each family module registers its ops)
from onnx2mcu.ops import int8  # noqa: E402,F401  (the integer paths, over the families)

__all__ = ["OpDef", "all_ops", "lookup", "node_scratch_bytes", "register", "unsupported_reason"]
