"""Operator definitions (see registry.py): one place per op for all stages."""
from onnx2mcu.ops.registry import (OpDef, all_ops, lookup, node_scratch_bytes, register,
                                   unsupported_reason)

__all__ = ["OpDef", "all_ops", "lookup", "node_scratch_bytes", "register", "unsupported_reason"]
