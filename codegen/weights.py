"""Constants -> one flash blob of 32-bit words, emitted compactly.

One `static const` union holds every constant the model uses, each at a
16-byte aligned offset; typed union members give aligned, aliasing-safe
pointers of every element type.  Hex words keep the C file small and fast to
compile (a 4 MB model compiles in seconds).
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.ir import Graph
from onnx2mcu.scheduler.arena import align

WORDS_PER_LINE = 12


def layout_weights(graph: Graph) -> tuple[dict[str, int], int]:
    """Offsets of the constants the nodes read, in first-use order."""
    offsets: dict[str, int] = {}
    cursor = 0
    for node in graph.nodes:
        for name in node.inputs:
            if name and graph.tensors[name].is_const and name not in offsets:
                offsets[name] = cursor
                cursor = align(cursor + graph.tensors[name].nbytes)
    return offsets, cursor


def weight_words(graph: Graph, offsets: dict[str, int], total: int) -> np.ndarray:
    blob = np.zeros(max(total, 4), dtype=np.uint8)
    for name, offset in offsets.items():
        tensor = graph.tensors[name]
        data = np.ascontiguousarray(tensor.data.astype(tensor.dtype.numpy, copy=False))
        raw = data.view(np.uint8).reshape(-1)
        blob[offset: offset + raw.size] = raw
    pad = (-blob.size) % 4
    if pad:
        blob = np.concatenate([blob, np.zeros(pad, np.uint8)])
    return blob.view("<u4")


def format_words(words: np.ndarray) -> str:
    hex_words = [f"0x{int(w):08x}" for w in words.tolist()]
    lines = (", ".join(hex_words[i:i + WORDS_PER_LINE]) for i in range(0, len(hex_words), WORDS_PER_LINE))
    return ",\n    ".join(lines)
