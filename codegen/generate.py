"""IR + schedule -> a folder of C sources: model.{c,h}, weights, kernels, harness, Makefile, report.

Every file is written aside in a staging folder and renamed into place by
codegen/output_dir.py, so a failure never leaves half a project behind and a
user's own files in the output folder are never lost.
Output is a pure function of (IR, schedule, options): no timestamps, stable
ordering, so the same model gives byte-identical files.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from typing import Mapping

import jinja2
import numpy as np

from onnx2mcu.version import __version__
from onnx2mcu.codegen.context import (C_TYPES, ON_DEMAND_SOURCES, CContext, NotSupportedInC, c_float,
                                      c_identifier, c_int)
from onnx2mcu.codegen.kernels import (PORTABLE, KernelSelectionMismatch, Selection,
                                      preference_of, select_kernel)
from onnx2mcu.codegen.kernels import c_support as kernel_support
from onnx2mcu.codegen.weights import format_words, layout_weights, weight_words
from onnx2mcu.errors import UserError
from onnx2mcu.ir import DType, Graph, union_members
from onnx2mcu.ops import lookup
from onnx2mcu.scheduler import Schedule

IO_SUFFIX = {dtype: dtype.suffix for dtype in DType}  # harness o2m_out_<suffix> (ir.DTYPE_TABLE)
# model.h's <PREFIX>_DTYPE_<SUFFIX> codes: 1 + the dtype's place in ir.DType (so new dtypes go at
# the end there; tests/test_int8_api.py pins the codes).  The names are the kernel suffixes, which
# <PREFIX>_INPUTn_DTYPE expands to; DTYPE_ALIASES are API version 1's names for the same codes.
C_API_DTYPES = [(dtype.suffix.upper(), code) for code, dtype in enumerate(DType, start=1)]
DTYPE_ALIASES = [("I8", "S8"), ("I32", "S32"), ("I64", "S64"), ("BOOL", "B8")]


@dataclass
class GeneratedModel:
    files: dict[str, str]  # relative path -> text
    kernel_sources: list[str]  # runtime_c .c files to copy
    report: dict


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("onnx2mcu.codegen", "templates"),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False, trim_blocks=False)


def tensor_offsets(sched: Schedule) -> tuple[dict[str, int], dict[str, int]]:
    prof, plan = sched.profile, sched.plan
    arena = {name: plan.offsets[index] for name, index in prof.buffer_of.items()}
    scratch = {b.scratch_of: plan.offsets[b.index] for b in prof.buffers if b.scratch_of}
    return arena, scratch


def emit_steps(graph: Graph, order, ctx: CContext,
               support: Mapping[str, Selection | str]) -> tuple[list[dict], list[str]]:
    """The C statements of every step by its selected kernel, and what cannot be emitted
    (all of it, not just the first)."""
    steps, problems = [], []
    for node in order:
        found = support.get(node.name, "no C kernel yet")
        if not isinstance(found, Selection):
            problems.append(f"'{node.name}' ({node.op_type}): {found}")
            continue
        kernel = found.kernel
        before = set(ctx.kernels)
        try:
            ctx.check_size(node, *node.inputs, *node.outputs)
            code = kernel.emit(node, ctx)
        except NotSupportedInC as exc:
            problems.append(str(exc))
            continue
        undeclared = ctx.kernels - before - set(kernel.sources)
        if undeclared:
            raise KernelSelectionMismatch(f"kernel {kernel.name} used {sorted(undeclared)}, which "
                                          f"its register_kernel(sources=...) does not list")
        if isinstance(code, str):
            code = [line for line in code.splitlines() if line.strip()]
        if not code:
            op = lookup(node.op_type, node.domain)
            code = ["/* alias: shares its input's bytes */" if op is not None and op.alias
                    else "/* nothing to do */"]
        steps.append({"name": node.name, "op": node.op_type, "code": list(code)})
    return steps, problems


def c_support(graph: Graph, board=(PORTABLE,)) -> list[str]:
    """Why this graph cannot be emitted as C (empty when it can), without scheduling it:
    `codegen.kernels.c_support` as one message per node."""
    return [f"'{name}' ({graph.node(name).op_type}): {found}"
            for name, found in kernel_support(graph, board).items()
            if not isinstance(found, Selection)]


def check_scratch(graph: Graph, sched: Schedule, support: Mapping[str, Selection | str]) -> None:
    """The schedule must reserve, for every node, exactly the scratch of its selected kernel."""
    reserved = {b.scratch_of: b.nbytes for b in sched.profile.buffers if b.scratch_of}
    for node in sched.order:
        found = support.get(node.name)
        if not isinstance(found, Selection):
            continue
        if reserved.get(node.name, 0) != found.scratch:
            raise KernelSelectionMismatch(
                f"'{node.name}' ({node.op_type}): the schedule reserved "
                f"{reserved.get(node.name, 0)} B of scratch but kernel {found.kernel.name} needs "
                f"{found.scratch} B; call codegen.kernels.select_kernels(graph, board) before "
                f"scheduling")


def raise_unsupported(graph: Graph, problems: list[str]) -> None:
    shown = problems[:20]
    more = f"; and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    raise UserError(f"{graph.source or graph.name}: {len(problems)} node(s) cannot be compiled to C "
                    f"yet: " + "; ".join(shown) + more +
                    " (`onnx2mcu simulate` still runs them in the Python reference)")


RESERVED_PREFIXES = ("main", "startup", "o2m")


def render_model(graph: Graph, sched: Schedule, prefix: str = "model",
                 test_inputs: Mapping[str, np.ndarray] | None = None,
                 external: frozenset[str] | set[str] = frozenset(),
                 board=(PORTABLE,)) -> GeneratedModel:
    """Render every generated text file; no I/O.

    Constants named in `external` go to a second blob placed in the board's
    external memory region (section .o2m_ext).  `board` (a Board or a kernel
    preference) picks the kernels; the schedule must have been made after
    `select_kernels` with the same board (its scratch is checked)."""
    prefix = c_identifier(prefix)
    if prefix in RESERVED_PREFIXES or prefix.startswith("o2m_"):
        raise UserError(f"prefix '{prefix}' would clash with the harness or kernel files "
                        f"(main.c, startup.c, o2m_*.c); choose another, e.g. 'net'")
    weight_offsets, internal_total = layout_weights(graph, exclude=external)
    ext_offsets, ext_total = layout_weights(graph, only=external) if external else ({}, 0)
    weights_total = internal_total + ext_total
    arena_offsets, scratch_offsets = tensor_offsets(sched)
    ctx = CContext(graph, arena_offsets, weight_offsets, scratch_offsets, prefix=prefix,
                   ext_offsets=ext_offsets)
    support = {node.name: select_kernel(node, graph, preference_of(board)) for node in graph.nodes}
    check_scratch(graph, sched, support)
    steps, problems = emit_steps(graph, sched.order, ctx, support)
    if problems:
        raise_unsupported(graph, problems)

    def io(name: str, values: np.ndarray | None = None) -> dict:
        tensor = graph.tensors[name]
        entry = {"name": name, "ident": c_identifier(name, "io_"), "ctype": C_TYPES[tensor.dtype],
                 "shape": list(tensor.shape), "size": tensor.numel, "nbytes": tensor.nbytes,
                 "ptr": ctx.ptr(name), "io": IO_SUFFIX[tensor.dtype],
                 "wire_name": "".join(ch if ch.isalnum() or ch in "_.-/:" else "_" for ch in name)}
        entry["quant"] = _io_quant(tensor)
        if values is not None:
            entry["initializer"] = _c_values(np.asarray(values, dtype=tensor.dtype.numpy).reshape(-1),
                                        tensor.dtype)
        return entry

    inputs = [io(n, None if test_inputs is None else test_inputs[n]) for n in graph.inputs]
    outputs = [io(n) for n in graph.outputs]
    _unique_idents(inputs + outputs)
    body = "\n".join(line for step in steps for line in step["code"])
    body += "\n".join(e["ptr"] for e in inputs + outputs)
    uses_weights = f"{prefix}_weights." in body or any(f"{prefix}_weights." in d
                                                        for d in ctx.declarations)
    uses_arena = f"{prefix}_arena." in body or any(f"{prefix}_arena." in d for d in ctx.declarations)
    common = dict(prefix=prefix, PREFIX=prefix.upper(), version=__version__,
                  source=os.path.basename(graph.source) or graph.name, inputs=inputs,
                  outputs=outputs, arena_bytes=sched.arena_bytes, peak_bytes=sched.peak_bytes,
                  weights_bytes=weights_total, n_steps=len(steps), scheduler=sched.method,
                  dtypes=C_API_DTYPES, dtype_aliases=DTYPE_ALIASES,
                  quant_helpers=any(e["quant"] and e["quant"]["helper"] for e in inputs + outputs))
    env = _env()
    words = weight_words(graph, weight_offsets, internal_total, ctx.relaid) if uses_weights else None
    ext_words = weight_words(graph, ext_offsets, ext_total, ctx.relaid) if ext_offsets else None
    files = {
        f"{prefix}.h": env.get_template("model.h.j2").render(**common),
        f"{prefix}.c": env.get_template("model.c.j2").render(
            **common, steps=steps, declarations=ctx.declarations, uses_arena=uses_arena,
            extra_includes=on_demand_includes(ctx.kernels),
            arena_words64=max((sched.arena_bytes + 7) // 8, 1), members=union_members()),
        f"{prefix}_weights.h": env.get_template("weights.h.j2").render(
            **common, members=union_members(), uses_weights=uses_weights, n_words=0 if words is None else len(words),
            words="" if words is None else format_words(words),
            offsets=sorted(weight_offsets.items(), key=lambda kv: (kv[1], kv[0])),
            n_ext_words=0 if ext_words is None else len(ext_words),
            ext_words="" if ext_words is None else format_words(ext_words),
            ext_offsets=sorted(ext_offsets.items(), key=lambda kv: (kv[1], kv[0]))),
    }
    if test_inputs is not None:
        files["main.c"] = render_harness(prefix, inputs, outputs)
    harness_io = {"inputs": [{k: e[k] for k in HARNESS_KEYS} for e in inputs],
                  "outputs": [{k: e[k] for k in HARNESS_KEYS} for e in outputs]}
    report = {"weights_bytes": weights_total, "external_weights_bytes": ext_total,
              "arena_bytes": sched.arena_bytes,
              "peak_bytes": sched.peak_bytes, "kernels": sorted(ctx.kernels), "c_io": harness_io}
    return GeneratedModel(files, sorted(ctx.kernels), report)


QUANT_HELPERS = {DType.INT8: "s8", DType.UINT8: "u8"}
"""Integer types with quantize/dequantize helpers in model.h; an int32-quantized input or output
gets its macros only (its header says so)."""


def _io_quant(tensor) -> dict | None:
    """Scale and zero point of a quantized input/output as C literals, for model.h's macros and
    helpers: per tensor, or per axis (arrays, with the element -> channel map: channel of flat
    element i = (i / inner) % channels)."""
    q = tensor.quant
    if q is None:
        return None
    scale = np.asarray(q.scale, np.float32).reshape(-1)
    zero = np.asarray(q.zero_point).reshape(-1)
    entry = {"helper": QUANT_HELPERS.get(tensor.dtype), "axis": None}
    if q.axis is None or scale.size == 1:
        return dict(entry, scale=c_float(float(scale[0])), zero_point=_c_macro_int(int(zero[0])))
    channels = int(tensor.shape[q.axis])
    if zero.size == 1:
        zero = np.full(scale.size, zero[0])
    if scale.size != channels or zero.size != channels:
        raise UserError(f"'{tensor.name}': {scale.size} scale(s) on axis {q.axis} of a graph "
                        f"input/output of shape {list(tensor.shape)}: one per index expected; fix "
                        f"its QuantizeLinear/DequantizeLinear")
    inner = max(int(np.prod(tensor.shape[q.axis + 1:], dtype=np.int64)), 1)  # no `/ 0` in the C
    return dict(entry, axis=int(q.axis), channels=channels, inner=inner,
                scales="{ " + ", ".join(c_float(float(v)) for v in scale) + " }",
                zero_points="{ " + ", ".join(c_int(int(v)) for v in zero) + " }")


def _c_macro_int(value: int) -> str:
    """An integer literal safe in any macro expansion (`x - ZP` with ZP = -3 must not read `x--3`)."""
    text = c_int(value)
    return f"({text})" if text.startswith("-") else text


def _unique_idents(entries: list[dict]) -> None:
    """Distinct tensor names can map to one C identifier ('a.b', 'a_b'): number the repeats."""
    seen: set[str] = set()
    for entry in entries:
        ident, k = entry["ident"], 1
        while ident in seen:
            k += 1
            ident = f"{entry['ident']}_{k}"
        entry["ident"] = ident
        seen.add(ident)


HARNESS_KEYS = ("name", "ident", "ctype", "shape", "size", "io", "wire_name")


def render_harness(prefix: str, inputs: list[dict], outputs: list[dict],
                   values: Mapping[str, np.ndarray] | None = None) -> str:
    """main.c: the model on compiled-in inputs, outputs printed bit-exactly.

    `inputs` entries carry `values` already, or take them from `values`."""
    if values is not None:
        inputs = [dict(e, initializer=_c_values(np.asarray(values[e["name"]]).reshape(-1),
                                           _DTYPE_OF_CTYPE[e["ctype"], e["io"]])) for e in inputs]
    return _env().get_template("main.c.j2").render(prefix=prefix, inputs=inputs, outputs=outputs)


_DTYPE_OF_CTYPE = {(dtype.ctype, dtype.suffix): dtype for dtype in DType}


def _c_values(flat: np.ndarray, dtype: DType) -> str:
    flat = flat.astype(dtype.numpy, copy=False)
    if dtype is DType.FLOAT32:
        items = [c_float(v) for v in flat.tolist()]
    else:
        ctype = C_TYPES[dtype]
        items = [c_int(int(v), ctype) for v in flat.tolist()]
    items = items or ["0"]
    return ",\n    ".join(", ".join(items[i:i + 8]) for i in range(0, len(items), 8))


ON_DEMAND_HEADERS = tuple(source[:-2] + ".h" for source in ON_DEMAND_SOURCES)
"""Headers of the kernel families added after o2m_kernels.h was frozen: copied into a
project, and included by its model.c, only when the model calls into their source, so
that the projects of models that do not use them stay byte-identical."""


def on_demand_includes(kernel_sources) -> list[str]:
    return [source[:-2] + ".h" for source in ON_DEMAND_SOURCES if source in kernel_sources]


def runtime_files(kernel_sources: list[str]) -> dict[str, bytes]:
    """The runtime_c headers (all) and the kernel sources the model needs."""
    root = resources.files("onnx2mcu.runtime_c")
    int8 = any(name.startswith("o2m_s8_") for name in kernel_sources)  # int8 headers only for int8 models
    out = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        header = entry.name.endswith(".h") and (int8 or not entry.name.startswith("o2m_s8_"))
        if entry.name in ON_DEMAND_HEADERS:
            header = entry.name[:-2] + ".c" in kernel_sources
        if header or entry.name in kernel_sources:
            out[entry.name] = entry.read_bytes()
    return out


def dump_json(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True, default=_json_default) + "\n"


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(type(value))
