"""IR + schedule -> a folder of C sources: model.{c,h}, weights, kernels, harness, Makefile, report.

The whole folder is written under a temporary name next to the destination
and renamed into place, so a failure never leaves half a project behind.
Output is a pure function of (IR, schedule, options): no timestamps, stable
ordering, so the same model gives byte-identical files.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Mapping

import jinja2
import numpy as np

from onnx2mcu import __version__
from onnx2mcu.codegen.context import C_TYPES, CContext, c_float, c_identifier
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


def render_model(graph: Graph, sched: Schedule, prefix: str = "model",
                 test_inputs: Mapping[str, np.ndarray] | None = None) -> GeneratedModel:
    """Render every generated text file; no I/O."""
    prefix = c_identifier(prefix)
    weight_offsets, weights_total = layout_weights(graph)
    arena_offsets, scratch_offsets = tensor_offsets(sched)
    ctx = CContext(graph, arena_offsets, weight_offsets, scratch_offsets, prefix=prefix)
    steps, missing = [], []
    for node in sched.order:
        op = lookup(node.op_type, node.domain)
        if op is None or (op.emit_c is None and not op.alias):
            missing.append(f"'{node.name}' ({node.op_type})")
            continue
        code = [] if op.alias else op.emit_c(node, ctx)
        if isinstance(code, str):
            code = [line for line in code.splitlines() if line.strip()]
        steps.append({"name": node.name, "op": node.op_type,
                      "code": code or ["/* alias: shares its input's bytes */"]})
    if missing:
        raise UserError(f"{graph.source}: no C kernel yet for {len(missing)} node(s): "
                        + ", ".join(missing[:10]) + ("..." if len(missing) > 10 else ""))
    for tensor in graph.outputs:
        if graph.tensors[tensor].is_const:
            raise UserError(f"{graph.source}: output '{tensor}' is a constant; nothing to compute")

    def io(name: str, values: np.ndarray | None = None) -> dict:
        tensor = graph.tensors[name]
        entry = {"name": name, "ident": c_identifier(name, "io_"), "ctype": C_TYPES[tensor.dtype],
                 "shape": list(tensor.shape), "size": tensor.numel, "nbytes": tensor.nbytes,
                 "ptr": ctx.ptr(name), "io": IO_SUFFIX[tensor.dtype],
                 "wire_name": "".join(ch if ch.isalnum() or ch in "_.-/:" else "_" for ch in name)}
        if values is not None:
            entry["values"] = _c_values(np.asarray(values, dtype=tensor.dtype.numpy).reshape(-1),
                                        tensor.dtype)
        return entry

    inputs = [io(n, None if test_inputs is None else test_inputs[n]) for n in graph.inputs]
    outputs = [io(n) for n in graph.outputs]
    common = dict(prefix=prefix, PREFIX=prefix.upper(), version=__version__,
                  source=os.path.basename(graph.source) or graph.name, inputs=inputs,
                  outputs=outputs, arena_bytes=sched.arena_bytes, peak_bytes=sched.peak_bytes,
                  weights_bytes=weights_total, n_steps=len(steps), scheduler=sched.method)
    env = _env()
    words = weight_words(graph, weight_offsets, weights_total)
    files = {
        f"{prefix}.h": env.get_template("model.h.j2").render(**common),
        f"{prefix}.c": env.get_template("model.c.j2").render(
            **common, steps=steps, declarations=ctx.declarations,
            arena_words64=max((sched.arena_bytes + 7) // 8, 1)),
        f"{prefix}_weights.h": env.get_template("weights.h.j2").render(
            **common, n_words=len(words), words=format_words(words),
            offsets=sorted(weight_offsets.items(), key=lambda kv: kv[1])),
    }
    if test_inputs is not None:
        files["main.c"] = render_harness(prefix, inputs, outputs)
    harness_io = {"inputs": [{k: e[k] for k in HARNESS_KEYS} for e in inputs],
                  "outputs": [{k: e[k] for k in HARNESS_KEYS} for e in outputs]}
    report = {"weights_bytes": weights_total, "arena_bytes": sched.arena_bytes,
              "peak_bytes": sched.peak_bytes, "kernels": sorted(ctx.kernels), "c_io": harness_io}
    return GeneratedModel(files, sorted(ctx.kernels), report)


HARNESS_KEYS = ("name", "ident", "ctype", "shape", "size", "io", "wire_name")


def render_harness(prefix: str, inputs: list[dict], outputs: list[dict],
                   values: Mapping[str, np.ndarray] | None = None) -> str:
    """main.c: the model on compiled-in inputs, outputs printed bit-exactly.

    `inputs` entries carry `values` already, or take them from `values`."""
    if values is not None:
        inputs = [dict(e, values=_c_values(np.asarray(values[e["name"]]).reshape(-1),
                                           _DTYPE_OF_CTYPE[e["ctype"], e["io"]])) for e in inputs]
    return _env().get_template("main.c.j2").render(prefix=prefix, inputs=inputs, outputs=outputs)


_DTYPE_OF_CTYPE = {("float", "f32"): DType.FLOAT32, ("int64_t", "i64"): DType.INT64,
                   ("int32_t", "i32"): DType.INT32, ("int8_t", "i8"): DType.INT8,
                   ("uint8_t", "u8"): DType.UINT8, ("uint8_t", "bool"): DType.BOOL}


def _c_values(flat: np.ndarray, dtype: DType) -> str:
    flat = flat.astype(dtype.numpy, copy=False)
    if dtype is DType.FLOAT32:
        items = [c_float(v) for v in flat.tolist()]
    elif dtype is DType.INT64:
        items = [f"INT64_C({v})" for v in flat.tolist()]
    else:
        items = [str(int(v)) for v in flat.tolist()]
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
                  finish=None) -> Path:
    """Write `files` into a fresh temporary sibling folder, let `finish(tmp)` add more, then swap it in."""
    out = Path(out_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
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
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.rename(out, old / "x")
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def dump_json(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True, default=_json_default) + "\n"


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(type(value))
