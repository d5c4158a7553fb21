"""Constants -> one flash blob of 64-bit words, emitted compactly.

One `static const` union holds every constant the model uses, each at a
16-byte aligned offset; typed union members give aligned, aliasing-safe
pointers of every element type.  The blob is written as little-endian 64-bit
words in minimal hex: compilers parse half as many tokens as with 32-bit
words, so 4 MB of weights compile in about 2 s with ~150 MB of compiler
memory.  (Every supported target is little-endian.)
"""
from __future__ import annotations

import numpy as np

from onnx2mcu.ir import Graph
from onnx2mcu.memory import align

WORDS_PER_LINE = 8
WORD_BYTES = 8


def layout_weights(graph: Graph, exclude: frozenset[str] | set[str] = frozenset(),
                   only: frozenset[str] | set[str] | None = None) -> tuple[dict[str, int], int]:
    """Offsets of the constants the nodes read (in first-use order), then of constant outputs.

    `exclude` / `only` split the constants between the internal blob and the external one."""
    offsets: dict[str, int] = {}
    cursor = 0
    names = [name for node in graph.nodes for name in node.inputs if name]
    names += list(graph.outputs)
    for name in names:
        if name in exclude or (only is not None and name not in only):
            continue
        if graph.tensors[name].is_const and name not in offsets:
            offsets[name] = cursor
            cursor = align(cursor + graph.tensors[name].nbytes)
    return offsets, cursor


def weight_words(graph: Graph, offsets: dict[str, int], total: int,
                 relaid: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The blob as little-endian uint64 words (at least one); `relaid` (CContext.relaid):
    constants whose bytes a kernel re-laid out (same size)."""
    blob = np.zeros(max(-(-total // WORD_BYTES), 1) * WORD_BYTES, dtype=np.uint8)
    for name, offset in offsets.items():
        tensor = graph.tensors[name]
        if relaid and name in relaid:
            raw = relaid[name]
            assert raw.size == tensor.nbytes, name
            blob[offset: offset + raw.size] = raw
            continue
        data = np.ascontiguousarray(np.asarray(tensor.data).astype(tensor.dtype.numpy, copy=False))
        raw = data.view(np.uint8).reshape(-1)
        blob[offset: offset + raw.size] = raw
    return blob.view("<u8")


def format_words(words: np.ndarray) -> str:
    """Hex literals, WORDS_PER_LINE per line, joined for the union initializer."""
    items = ["0" if w == 0 else hex(w) for w in words.tolist()]
    lines = (",".join(items[i:i + WORDS_PER_LINE]) for i in range(0, len(items), WORDS_PER_LINE))
    return ",\n    ".join(lines)


def external_weights(graph: Graph, budget: int) -> set[str]:
    """The largest constants to move out of the internal flash until the rest fits `budget` bytes."""
    consts = sorted({n for node in graph.nodes for n in node.inputs
                     if n and graph.tensors[n].is_const}, key=lambda n: (-graph.tensors[n].nbytes, n))
    total = sum(graph.tensors[n].nbytes for n in consts)
    moved: set[str] = set()
    for name in consts:
        if total <= budget:
            break
        moved.add(name)
        total -= graph.tensors[name].nbytes
    return moved
