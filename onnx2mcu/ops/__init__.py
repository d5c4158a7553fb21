"""Operator definitions (see registry.py): one place per op for all stages."""
from onnx2mcu.ops.registry import (OpDef, all_ops, lookup, node_scratch_bytes, register,
                                   unsupported_reason)
from onnx2mcu.ops import families  # noqa: E402,F401  (each family module registers its ops)

__all__ = ["OpDef", "all_ops", "lookup", "node_scratch_bytes", "register", "unsupported_reason"]
