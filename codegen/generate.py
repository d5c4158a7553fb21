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
from pathlib import Path
from typing import Mapping

import jinja2
import numpy as np

from onnx2mcu import __version__
from onnx2mcu.codegen import output_dir
from onnx2mcu.codegen.context import (C_TYPES, CContext, NotSupportedInC, c_float,
                                      c_identifier, c_int)
from onnx2mcu.codegen.weights import format_words, layout_weights, weight_words
from onnx2mcu.errors import UserError
from onnx2mcu.ir import DType, Graph
from onnx2mcu.ops import lookup
from onnx2mcu.scheduler import Schedule

IO_SUFFIX = {DType.FLOAT32: "f32", DType.INT64: "i64", DType.INT32: "i32", DType.INT8: "i8",
             DType.UINT8: "u8", DType.BOOL: "bool", DType.BIT: "u32"}


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


def emit_steps(graph: Graph, order, ctx: CContext) -> tuple[list[dict], list[str]]:
    """The C statements of every step, and what cannot be emitted (all of it, not just the first)."""
    steps, problems = [], []
    for node in order:
        op = lookup(node.op_type, node.domain)
        if op is None or op.emit_c is None:
            problems.append(f"'{node.name}' ({node.op_type}): no C kernel yet")
            continue
        try:
            ctx.check_size(node, *node.inputs, *node.outputs)
            code = op.emit_c(node, ctx)
        except NotSupportedInC as exc:
            problems.append(str(exc))
            continue
        if isinstance(code, str):
            code = [line for line in code.splitlines() if line.strip()]
        if not code:
            code = ["/* alias: shares its input's bytes */" if op.alias else "/* nothing to do */"]
        steps.append({"name": node.name, "op": node.op_type, "code": list(code)})
    return steps, problems


def c_support(graph: Graph) -> list[str]:
    """Why this graph cannot be emitted as C (empty when it can), without scheduling it.

    Runs every emitter against a placeholder layout (every tensor at its own offset)."""
    weight_offsets, _ = layout_weights(graph)
    distinct = {name: 16 * i for i, name in enumerate(sorted(graph.tensors))}
    scratch = {node.name: 16 * (len(distinct) + i) for i, node in enumerate(graph.nodes)}
    ctx = CContext(graph, distinct, dict(distinct, **weight_offsets), scratch)
    return emit_steps(graph, graph.nodes, ctx)[1]


def _raise_unsupported(graph: Graph, problems: list[str]) -> None:
    shown = problems[:20]
    more = f"; and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    raise UserError(f"{graph.source or graph.name}: {len(problems)} node(s) cannot be compiled to C "
                    f"yet: " + "; ".join(shown) + more +
                    " (`onnx2mcu simulate` still runs them in the Python reference)")


RESERVED_PREFIXES = ("main", "startup", "o2m")


def render_model(graph: Graph, sched: Schedule, prefix: str = "model",
                 test_inputs: Mapping[str, np.ndarray] | None = None,
                 external: frozenset[str] | set[str] = frozenset()) -> GeneratedModel:
    """Render every generated text file; no I/O.

    Constants named in `external` go to a second blob placed in the board's
    external memory region (section .o2m_ext)."""
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
    steps, problems = emit_steps(graph, sched.order, ctx)
    if problems:
        _raise_unsupported(graph, problems)

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
                  weights_bytes=weights_total, n_steps=len(steps), scheduler=sched.method)
    env = _env()
    words = weight_words(graph, weight_offsets, internal_total) if uses_weights else None
    ext_words = weight_words(graph, ext_offsets, ext_total) if ext_offsets else None
    files = {
        f"{prefix}.h": env.get_template("model.h.j2").render(**common),
        f"{prefix}.c": env.get_template("model.c.j2").render(
            **common, steps=steps, declarations=ctx.declarations, uses_arena=uses_arena,
            arena_words64=max((sched.arena_bytes + 7) // 8, 1)),
        f"{prefix}_weights.h": env.get_template("weights.h.j2").render(
            **common, uses_weights=uses_weights, n_words=0 if words is None else len(words),
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


def _io_quant(tensor) -> dict | None:
    """Per-tensor scale and zero point of a quantized input/output, for the header's macros."""
    q = tensor.quant
    if q is None or np.asarray(q.scale).size != 1:
        return None
    return {"scale": c_float(float(np.asarray(q.scale).reshape(-1)[0])),
            "zero_point": int(np.asarray(q.zero_point).reshape(-1)[0])}


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


_DTYPE_OF_CTYPE = {("float", "f32"): DType.FLOAT32, ("int64_t", "i64"): DType.INT64,
                   ("int32_t", "i32"): DType.INT32, ("int8_t", "i8"): DType.INT8,
                   ("uint8_t", "u8"): DType.UINT8, ("uint8_t", "bool"): DType.BOOL}


def _c_values(flat: np.ndarray, dtype: DType) -> str:
    flat = flat.astype(dtype.numpy, copy=False)
    if dtype is DType.FLOAT32:
        items = [c_float(v) for v in flat.tolist()]
    else:
        ctype = C_TYPES[dtype]
        items = [c_int(int(v), ctype) for v in flat.tolist()]
    items = items or ["0"]
    return ",\n    ".join(", ".join(items[i:i + 8]) for i in range(0, len(items), 8))


def runtime_files(kernel_sources: list[str]) -> dict[str, bytes]:
    """The runtime_c headers (all) and the kernel sources the model needs."""
    root = resources.files("onnx2mcu.runtime_c")
    out = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".h") or entry.name in kernel_sources:
            out[entry.name] = entry.read_bytes()
    return out


def write_project(out_dir: str | os.PathLike, files: Mapping[str, str | bytes],
                  finish=None, force: bool = False) -> Path:
    """Write `files` into a staging folder, let `finish(tmp)` add more, then install them in `out_dir`.

    codegen/output_dir.py decides what may be replaced (never a file of the user's)."""
    tmp = output_dir.make_staging(out_dir)
    try:
        for rel, content in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                path.write_text(content, encoding="utf-8")
            else:
                path.write_bytes(content)
        if finish is not None:
            finish(tmp)
    except BaseException:
        output_dir.discard(tmp)
        raise
    return output_dir.install(tmp, force=force, version=__version__)


def dump_json(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True, default=_json_default) + "\n"


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(type(value))
