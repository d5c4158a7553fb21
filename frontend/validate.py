"""The front door: check what a model file declares before anything allocates it or hands it
to onnx, onnxruntime or numpy.

Every problem is one UserError naming the file and, when known, the node; the checks are
cheap (they read the protobuf's declarations, never tensor data) so that a mutated file
with a dim of 2^31, an unknown dtype code or a Conv with stride 0 is refused in
milliseconds instead of reaching a library that raises a traceback or allocates 16 GiB.

    validate_model(proto, label, model_dir)   after parsing, before the checker / loading data
    validate_graph(graph, label)              on the IR: tensor bytes, axes, groups
    validate_for_codegen(graph, label, board) what the generated C needs to build and run
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import onnx

from onnx2mcu.errors import UserError
from onnx2mcu.ir import Graph

GIB = 1024 ** 3
DEFAULT_MAX_TENSOR_BYTES = 1 * GIB
MIN_SUPPORTED_OPSET = 1
"""Older default-domain opsets are lifted to 13 by load.py; below 1 is not ONNX."""
MAX_SUPPORTED_OPSET = onnx.defs.onnx_opset_version()
"""The newest default-domain opset the installed onnx knows (its checker and shape inference)."""
ACTIVATION_COPIES = 4
"""The simulator's arena, its per-op numpy results and onnxruntime's buffers: about four
copies of the activations are alive while a model is checked."""
MAX_NAME_BYTES = 255  # one path component (NAME_MAX on Linux)
MAX_PATH_BYTES = 4096  # PATH_MAX on Linux

_limit = {"max_tensor_bytes": DEFAULT_MAX_TENSOR_BYTES}

# itemsize of each ONNX element type onnx2mcu reads (others are refused by name)
_ITEMSIZE = {
    onnx.TensorProto.FLOAT: 4, onnx.TensorProto.UINT8: 1, onnx.TensorProto.INT8: 1,
    onnx.TensorProto.UINT16: 2, onnx.TensorProto.INT16: 2, onnx.TensorProto.INT32: 4,
    onnx.TensorProto.INT64: 8, onnx.TensorProto.BOOL: 1, onnx.TensorProto.FLOAT16: 2,
    onnx.TensorProto.DOUBLE: 8, onnx.TensorProto.UINT32: 4, onnx.TensorProto.UINT64: 8,
    onnx.TensorProto.BFLOAT16: 2,
}
_KNOWN_DTYPES = set(onnx.TensorProto.DataType.values())
_POSITIVE_INTS = {  # attributes whose every value must be >= 1
    "Conv": ("strides", "kernel_shape", "dilations", "group"),
    "ConvTranspose": ("strides", "kernel_shape", "dilations", "group"),
    "ConvInteger": ("strides", "kernel_shape", "dilations", "group"),
    "QLinearConv": ("strides", "kernel_shape", "dilations", "group"),
    "MaxPool": ("strides", "kernel_shape", "dilations"),
    "AveragePool": ("strides", "kernel_shape", "dilations"),
    "LpPool": ("strides", "kernel_shape", "dilations"),
    "DepthToSpace": ("blocksize",),
    "SpaceToDepth": ("blocksize",),
}
_NON_NEGATIVE_INTS = {"Conv": ("pads",), "ConvInteger": ("pads",), "ConvTranspose": ("pads", "output_padding"),
                      "MaxPool": ("pads",), "AveragePool": ("pads",)}


def configure(max_tensor_bytes: int | None = None) -> None:
    """Set the process-wide tensor size limit (the CLI does, from --max-tensor-bytes or the board)."""
    if max_tensor_bytes is not None:
        if max_tensor_bytes <= 0:
            raise UserError(f"--max-tensor-bytes must be positive, got {max_tensor_bytes}")
        _limit["max_tensor_bytes"] = int(max_tensor_bytes)


def max_tensor_bytes() -> int:
    return _limit["max_tensor_bytes"]


def board_tensor_limit(board) -> int:
    """The default limit for a board: at least 1 GiB, more for a board with more memory.

    The limit guards the memory of the machine running onnx2mcu; whether the model fits
    the board is build.check_budget's job, which names RAM/flash, the bytes needed and the
    step at the peak (and which --force overrides), so a board never lowers the limit."""
    sizes = [s for s in (board.ram_bytes, board.flash_bytes, board.ext_bytes) if s]
    return max([DEFAULT_MAX_TENSOR_BYTES, *sizes])


# ----- paths --------------------------------------------------------------------
def check_path(path: str | os.PathLike, what: str = "model") -> Path:
    """A path the OS can take: valid text, components and total length within limits."""
    raw = os.fsencode(path)
    text = os.fsdecode(raw)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = raw.decode("utf-8", errors="replace")
        raise UserError(f"{shown}: the {what} path is not valid UTF-8; rename the file") from None
    if len(raw) > MAX_PATH_BYTES:
        raise UserError(f"{text[:60]}...: the {what} path is {len(raw)} bytes long, more than "
                        f"{MAX_PATH_BYTES}; use a shorter path")
    for part in raw.split(b"/"):
        if len(part) > MAX_NAME_BYTES:
            raise UserError(f"{text[:60]}...: a {what} path component is {len(part)} bytes long, "
                            f"more than {MAX_NAME_BYTES}; use shorter names")
    return Path(text)


def check_output_path(path: str | os.PathLike) -> Path:
    """An output folder that can be created: no file among its parents, a writable existing parent."""
    out = check_path(path, "output")
    probe = out.resolve() if out.exists() else out.absolute()
    for parent in [probe, *probe.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{out}: '{parent}' is a file, not a folder; pick another -o")
            target = parent if parent != probe else parent.parent
            if not os.access(target, os.W_OK | os.X_OK):
                raise UserError(f"{out}: '{target}' is not writable; pick another -o")
            break
    return out


# ----- the protobuf, before any data is read ---------------------------------------
def validate_model(proto: onnx.ModelProto, label: str, model_dir: str | os.PathLike | None) -> None:
    graph = proto.graph
    if not graph.node:
        raise UserError(f"{label}: the graph has no nodes; re-export the model")
    _check_names(graph, label)
    _check_opsets(proto, label)
    limit = max_tensor_bytes()
    for init in graph.initializer:
        _check_tensor_proto(init, f"initializer '{init.name}'", label, limit, model_dir)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                _check_tensor_proto(attr.t, f"node '{_node_label(node)}' attribute '{attr.name}'",
                                    label, limit, model_dir)
            elif attr.type == onnx.AttributeProto.TENSORS:
                for t in attr.tensors:
                    _check_tensor_proto(t, f"node '{_node_label(node)}' attribute '{attr.name}'",
                                        label, limit, model_dir)
    initializers = {i.name for i in graph.initializer}
    for info in graph.input:
        if info.name not in initializers:
            _check_value_info(info, "input", label, limit)
    for info in graph.output:
        _check_value_info(info, "output", label, limit, shape_optional=True)
    _check_wiring(graph, label, initializers)
    opset = next((e.version for e in proto.opset_import if e.domain in ("", "ai.onnx")), 0)
    for node in graph.node:
        _check_attributes(node, label, graph, opset)


def _check_names(graph: onnx.GraphProto, label: str) -> None:
    """Protobuf hands back bytes for a string field that is not UTF-8: a damaged file."""
    def bad(value) -> bool:
        return not isinstance(value, str)

    for index, node in enumerate(graph.node):
        fields = [node.name, node.op_type, node.domain, *node.input, *node.output,
                  *(a.name for a in node.attribute)]
        if any(bad(v) for v in fields):
            raise UserError(f"{label}: node {index} has a name that is not valid UTF-8; the file is damaged")
    for info in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        if bad(info.name):
            raise UserError(f"{label}: a tensor name is not valid UTF-8; the file is damaged")
    if bad(graph.name):
        raise UserError(f"{label}: the graph name is not valid UTF-8; the file is damaged")


def _check_opsets(proto: onnx.ModelProto, label: str) -> None:
    seen: set[str] = set()
    for entry in proto.opset_import:
        domain = entry.domain or "ai.onnx"
        if domain in seen:
            raise UserError(f"{label}: opset for domain '{domain}' is imported twice")
        seen.add(domain)
        if domain == "ai.onnx" and not MIN_SUPPORTED_OPSET <= entry.version <= MAX_SUPPORTED_OPSET:
            raise UserError(f"{label}: opset {entry.version} is not supported (onnx2mcu reads opsets "
                            f"{MIN_SUPPORTED_OPSET} to {MAX_SUPPORTED_OPSET}); re-export with another opset")
        if entry.version < 1:
            raise UserError(f"{label}: opset version {entry.version} for domain '{domain}' is not valid")
    if "ai.onnx" not in seen and any(n.domain in ("", "ai.onnx") for n in proto.graph.node):
        raise UserError(f"{label}: the model imports no default (ai.onnx) opset but uses its ops")
    used = {n.domain or "ai.onnx" for n in proto.graph.node}
    missing = sorted(used - seen)
    if missing:
        raise UserError(f"{label}: nodes use domain(s) {', '.join(missing)} but the model imports no "
                        "opset for them")


def _check_tensor_proto(t: onnx.TensorProto, what: str, label: str, limit: int,
                        model_dir: str | os.PathLike | None) -> None:
    if t.data_type not in _KNOWN_DTYPES or t.data_type == onnx.TensorProto.UNDEFINED:
        raise UserError(f"{label}: {what} has unknown dtype code {t.data_type}")
    if t.data_type not in _ITEMSIZE:
        name = onnx.TensorProto.DataType.Name(t.data_type)
        raise UserError(f"{label}: {what} has dtype {name}, which onnx2mcu does not read")
    if any(d < 0 for d in t.dims):
        raise UserError(f"{label}: {what} has a negative dim {list(t.dims)}")
    count = _product(t.dims, limit)
    nbytes = count * _ITEMSIZE[t.data_type]
    if nbytes > limit:
        raise UserError(f"{label}: {what} declares {list(t.dims)} = {nbytes} bytes, more than the "
                        f"limit of {limit} bytes (--max-tensor-bytes)")
    if t.data_location == onnx.TensorProto.EXTERNAL:
        _check_external(t, what, label, nbytes, model_dir)
        return
    if t.HasField("raw_data"):
        if len(t.raw_data) != nbytes and not (t.data_type == onnx.TensorProto.BOOL and count == 0):
            raise UserError(f"{label}: {what} holds {len(t.raw_data)} bytes of data but its dims "
                            f"{list(t.dims)} need {nbytes}; the file is damaged")
        return
    stored = _typed_count(t)
    if stored is not None and stored != count and not (stored == 0 and count == 0):
        raise UserError(f"{label}: {what} holds {stored} values but its dims {list(t.dims)} need "
                        f"{count}; the file is damaged")


def _typed_count(t: onnx.TensorProto) -> int | None:
    fields = {onnx.TensorProto.FLOAT: "float_data", onnx.TensorProto.DOUBLE: "double_data",
              onnx.TensorProto.INT64: "int64_data", onnx.TensorProto.UINT64: "uint64_data",
              onnx.TensorProto.UINT32: "uint64_data"}
    field = fields.get(t.data_type, "int32_data")
    return len(getattr(t, field))


def _check_external(t: onnx.TensorProto, what: str, label: str, nbytes: int,
                    model_dir: str | os.PathLike | None) -> None:
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location")
    if not location:
        raise UserError(f"{label}: {what} is stored externally but names no file")
    if model_dir is None:
        raise UserError(f"{label}: {what} is stored in external file '{location}'; load the model "
                        "from its file so the data can be found")
    base = Path(model_dir).resolve()
    path = (base / location).resolve()
    if base != path and base not in path.parents:
        raise UserError(f"{label}: {what} points outside the model's folder ('{location}')")
    if not path.is_file():
        raise UserError(f"{label}: external weight data '{location}' of {what} is missing; keep it "
                        "next to the model")
    try:
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else nbytes
    except ValueError:
        raise UserError(f"{label}: {what} has a non-numeric external offset or length") from None
    if offset < 0 or length != nbytes or offset + length > path.stat().st_size:
        raise UserError(f"{label}: external data of {what} ({location}, offset {offset}, length "
                        f"{length}) does not match its dims ({nbytes} bytes) or the file's size")


def _check_value_info(info: onnx.ValueInfoProto, kind: str, label: str, limit: int,
                      shape_optional: bool = False) -> None:
    if not info.name:
        raise UserError(f"{label}: a graph {kind} has no name")
    if not info.type.HasField("tensor_type"):
        if kind == "input":
            raise UserError(f"{label}: {kind} '{info.name}' is not a tensor (sequence/map types are "
                            "not supported)")
        return
    tensor_type = info.type.tensor_type
    elem = tensor_type.elem_type
    if elem not in _KNOWN_DTYPES or (elem == onnx.TensorProto.UNDEFINED and kind == "input"):
        raise UserError(f"{label}: {kind} '{info.name}' has unknown dtype code {elem}")
    if not tensor_type.HasField("shape") or shape_optional:
        return
    dims = []
    for axis, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value"):
            if dim.dim_value <= 0:
                raise UserError(f"{label}: {kind} '{info.name}' dim {axis} is {dim.dim_value}; dims "
                                "must be positive (use a name for a dynamic dim)")
            dims.append(dim.dim_value)
    itemsize = _ITEMSIZE.get(elem, 8)
    nbytes = _product(dims, limit) * itemsize
    if nbytes > limit:
        raise UserError(f"{label}: {kind} '{info.name}' declares {dims} = {nbytes} bytes, more than the "
                        f"limit of {limit} bytes (--max-tensor-bytes)")


def _check_wiring(graph: onnx.GraphProto, label: str, initializers: set[str]) -> None:
    """Outputs exist, are unique and are computed; every node input is defined before use."""
    if not graph.output:
        raise UserError(f"{label}: the graph has no outputs; a model must return something")
    names = [o.name for o in graph.output]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"{label}: graph output(s) {', '.join(repr(d) for d in dupes)} listed more "
                        "than once; give each output once")
    inputs = {i.name for i in graph.input}
    passthrough = [n for n in names if n in inputs or n in initializers]
    if passthrough:
        raise UserError(f"{label}: graph output '{passthrough[0]}' is a graph input or initializer, "
                        "not computed by any node")
    defined = set(inputs) | set(initializers)
    produced: dict[str, str] = {}
    for index, node in enumerate(graph.node):
        who = _node_label(node, index)
        for name in node.input:
            if name and name not in defined:
                later = any(name in n.output for n in graph.node[index:])
                why = "is produced later (a cycle or unsorted nodes)" if later else "is never defined"
                raise UserError(f"{label}: node '{who}' ({node.op_type}) reads '{name}', which {why}")
        for name in node.output:
            if not name:
                continue
            if name in produced or name in inputs or name in initializers:
                first = produced.get(name, "a graph input or initializer")
                raise UserError(f"{label}: node '{who}' ({node.op_type}) writes '{name}', which is "
                                f"already written by {first}")
            produced[name] = f"node '{who}'"
            defined.add(name)
    missing = [n for n in names if n not in produced]
    if missing:
        raise UserError(f"{label}: graph output '{missing[0]}' is not computed by any node")


def _schema_attribute_types(op_type: str, opset: int) -> dict[str, int] | None:
    try:
        schema = onnx.defs.get_schema(op_type, max_inclusive_version=opset, domain="")
    except Exception:  # noqa: BLE001 - unknown op: reported later, all at once
        return None
    return {name: int(attr.type) for name, attr in schema.attributes.items()}


def _check_attributes(node: onnx.NodeProto, label: str, graph: onnx.GraphProto, opset: int = 0) -> None:
    if node.domain not in ("", "ai.onnx"):
        return
    who = _node_label(node)
    attrs = {a.name: a for a in node.attribute}
    if len(attrs) != len(node.attribute):
        raise UserError(f"{label}: node '{who}' ({node.op_type}) sets an attribute twice")
    expected = _schema_attribute_types(node.op_type, opset) if opset else None
    for name, attr in attrs.items():
        if expected is not None and name in expected and attr.type != expected[name]:
            got = onnx.AttributeProto.AttributeType.Name(attr.type) if attr.type in \
                onnx.AttributeProto.AttributeType.values() else str(attr.type)
            want = onnx.AttributeProto.AttributeType.Name(expected[name])
            raise UserError(f"{label}: node '{who}' ({node.op_type}) attribute '{name}' is {got}, "
                            f"the op expects {want}")
    for name in _POSITIVE_INTS.get(node.op_type, ()):
        values = _ints(attrs.get(name))
        if any(v < 1 for v in values):
            raise UserError(f"{label}: node '{who}' ({node.op_type}) has {name}={values}; every value "
                            "must be at least 1")
    for name in _NON_NEGATIVE_INTS.get(node.op_type, ()):
        values = _ints(attrs.get(name))
        if any(v < 0 for v in values):
            raise UserError(f"{label}: node '{who}' ({node.op_type}) has negative {name}={values}")
    if node.op_type in ("Conv", "ConvInteger", "ConvTranspose") and len(node.input) > 1:
        group = (_ints(attrs.get("group")) or [1])[0]
        weight = next((i for i in graph.initializer if i.name == node.input[1]), None)
        forward = node.op_type != "ConvTranspose"
        if weight is not None and len(weight.dims) >= 2:
            out_channels = weight.dims[0] if forward else weight.dims[1] * group
            in_channels = weight.dims[1] * group if forward else weight.dims[0]
            if out_channels % group or in_channels % group:
                raise UserError(f"{label}: node '{who}' ({node.op_type}) has group={group}, which "
                                f"does not divide its {out_channels} output / {in_channels} input channels")


def _ints(attr: onnx.AttributeProto | None) -> list[int]:
    if attr is None:
        return []
    if attr.type == onnx.AttributeProto.INT:
        return [attr.i]
    if attr.type == onnx.AttributeProto.INTS:
        return list(attr.ints)
    return []


def _node_label(node: onnx.NodeProto, index: int | None = None) -> str:
    return node.name or next((o for o in node.output if o), None) or f"node{index if index is not None else '?'}"


def _product(dims: Iterable[int], limit: int) -> int:
    """The exact element count (Python ints: 2^62 dims do not overflow); `limit` is unused
    but keeps call sites explicit about what the count is compared with."""
    count = 1
    for d in dims:
        count *= int(d)
    return count


# ----- the IR ------------------------------------------------------------------------
_AXIS_OPS = {"Concat", "Gather", "Softmax", "LogSoftmax", "Hardmax", "Split", "ArgMax", "ArgMin",
             "CumSum", "Compress", "GatherElements", "ScatterElements", "LRN", "Flatten"}
_AXES_OPS = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
             "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "Squeeze", "Transpose"}


def validate_graph(graph: Graph, label: str) -> None:
    """Static shapes are known: every tensor within the size limit, axes within rank."""
    limit = max_tensor_bytes()
    for name, tensor in graph.tensors.items():
        if any(d < 0 for d in tensor.shape):
            raise UserError(f"{label}: tensor '{name}' has a negative dim {list(tensor.shape)}")
        nbytes = _product(tensor.shape, limit) * tensor.dtype.itemsize
        if nbytes > limit:
            raise UserError(f"{label}: tensor '{name}' {list(tensor.shape)} needs {nbytes} bytes, more "
                            f"than the limit of {limit} bytes (--max-tensor-bytes)")
    # the simulator's arena, its numpy results and onnxruntime each hold up to every activation
    activations = sum(_product(t.shape, limit) * t.dtype.itemsize for t in graph.tensors.values()
                      if not t.is_const)
    if activations * ACTIVATION_COPIES > limit:
        raise UserError(f"{label}: the activations total {activations} bytes; checking them takes about "
                        f"{ACTIVATION_COPIES}x that, more than the limit of {limit} bytes "
                        "(--max-tensor-bytes); bind smaller shapes with --input-shape")
    for name in graph.inputs:
        if any(d <= 0 for d in graph.tensors[name].shape):
            raise UserError(f"{label}: input '{name}' has shape {list(graph.tensors[name].shape)}; "
                            "every dim must be positive")
    for node in graph.nodes:
        if node.domain not in ("", "ai.onnx") or not node.inputs or node.inputs[0] not in graph.tensors:
            continue
        rank = len(graph.tensors[node.inputs[0]].shape)
        who = f"node '{node.name}' ({node.op_type})"
        if node.op_type in _AXIS_OPS and "axis" in node.attrs:
            axis = node.attrs["axis"]
            high = rank if node.op_type == "Flatten" else rank - 1
            if isinstance(axis, int) and not -rank <= axis <= high:
                raise UserError(f"{label}: {who} has axis={axis}, out of range for its rank-{rank} input")
        if node.op_type == "Transpose" and "perm" in node.attrs:
            perm = list(node.attrs["perm"])
            if sorted(perm) != list(range(rank)):
                raise UserError(f"{label}: {who} has perm={perm}, not a permutation of {rank} axes")
        if node.op_type in _AXES_OPS and "axes" in node.attrs:
            axes = list(node.attrs["axes"])
            if any(not -rank <= a < rank for a in axes) or len({a % rank for a in axes if rank}) != len(axes):
                raise UserError(f"{label}: {who} has axes={axes}, out of range or repeated for its "
                                f"rank-{rank} input")


def validate_for_codegen(graph: Graph, label: str) -> None:
    """Refuse at compile time what the generated C could not build or run."""
    if not graph.outputs:
        raise UserError(f"{label}: the model has no outputs; the generated model_run() would have none")
    if len(set(graph.outputs)) != len(graph.outputs):
        raise UserError(f"{label}: a graph output is listed more than once; the C API needs distinct outputs")
    for node in graph.nodes:
        group = node.attrs.get("group")
        if group is not None and isinstance(group, int) and group < 1:
            raise UserError(f"{label}: node '{node.name}' ({node.op_type}) has group={group}")


# ----- the boundary ------------------------------------------------------------------
_LIBRARIES = ("onnx.", "onnxruntime", "google.protobuf", "numpy", "onnx_ir", "onnxscript")


_READING_ERRORS = (ValueError, TypeError, IndexError, KeyError, ArithmeticError, RuntimeError,
                   AttributeError, AssertionError, UnicodeError, OSError)


def library_error(exc: BaseException, label: str | None, reading: bool = False) -> UserError | None:
    """A UserError for an exception raised inside onnx, onnxruntime, protobuf or numpy (the
    model is what they rejected), naming the file and the node being processed; None for
    anything else (a bug in onnx2mcu) and for MemoryError.

    `reading=True` is the frontend's boundary: there numpy raises from C (no Python frame of
    its own) on what a damaged file declares, so the usual error types count as the file's."""
    if isinstance(exc, (UserError, MemoryError, KeyboardInterrupt, SystemExit)):
        return None
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    if not frames:
        return None
    innermost = frames[-1].f_globals.get("__name__", "")
    library = next((lib.rstrip(".") for lib in _LIBRARIES if innermost == lib.rstrip(".")
                    or innermost.startswith(lib if lib.endswith(".") else lib + ".")
                    or innermost == lib), None)
    module = type(exc).__module__ or ""
    if library is None and module.split(".")[0] in ("onnx", "onnxruntime", "google"):
        library = module.split(".")[0]
    if library is None and reading and isinstance(exc, _READING_ERRORS):
        library = "reading"
    if library is None:
        return None
    node = None
    for frame in reversed(frames):
        candidate = frame.f_locals.get("node")
        if candidate is not None and hasattr(candidate, "op_type"):
            node = candidate
            break
    where = f"{label}: " if label else ""
    at = f"node '{getattr(node, 'name', '') or '?'}' ({node.op_type}): " if node is not None else ""
    text = str(exc).strip().splitlines()
    first = text[0][:300] if text else type(exc).__name__
    if library == "reading":
        return UserError(f"{where}{at}cannot read the model ({type(exc).__name__}: {first}); the file may "
                         "be damaged; if it runs in onnxruntime, please report this with the model")
    return UserError(f"{where}{at}{library} rejected the model ({type(exc).__name__}: {first}); "
                     "the file may be damaged or use a feature onnx2mcu does not support")


MAX_HOST_HARNESS_BYTES = 64 * 1024 * 1024
"""The host harness compiles its test inputs into main.c as text (~2.5 characters a byte)."""


def validate_harness(graph: Graph, label: str, board) -> None:
    """Test inputs and output buffers the harness holds must fit some memory of the board."""
    io_bytes = sum(graph.tensors[n].nbytes for n in list(graph.inputs) + list(graph.outputs))
    if board.is_host:
        limit = MAX_HOST_HARNESS_BYTES
    else:
        limit = sum(s for s in (board.ram_bytes, board.flash_bytes, board.ext_bytes) if s)
    if io_bytes > limit:
        raise UserError(f"{label}: the test harness would hold {io_bytes} bytes of inputs and outputs, "
                        f"more than the {limit} bytes {board.name} can take; bind smaller shapes with "
                        "--input-shape")


def validate_bound_inputs(proto: onnx.ModelProto, label: str) -> None:
    """After --input-shape and batch binding, before shape inference and folding see the dims."""
    limit = max_tensor_bytes()
    initializers = {i.name for i in proto.graph.initializer}
    for info in proto.graph.input:
        if info.name in initializers or not info.type.HasField("tensor_type"):
            continue
        dims = [d.dim_value for d in info.type.tensor_type.shape.dim]
        nbytes = _product(dims, limit) * _ITEMSIZE.get(info.type.tensor_type.elem_type, 8)
        if nbytes > limit:
            raise UserError(f"{label}: input '{info.name}' bound to {dims} needs {nbytes} bytes, more than "
                            f"the limit of {limit} bytes (--max-tensor-bytes); give smaller --input-shape")


def validate_npz_header(path, name: str, shape: tuple, dtype) -> None:
    """An array of an --inputs .npz, judged by its header before it is read."""
    import numpy as np

    if dtype.hasobject:
        raise UserError(f"{path}: array '{name}' holds Python objects; save plain numeric arrays")
    if any(d < 0 for d in shape):
        raise UserError(f"{path}: array '{name}' has a negative dim {list(shape)}")
    limit = max_tensor_bytes()
    nbytes = _product(shape, limit) * max(np.dtype(dtype).itemsize, 1)
    if nbytes > limit:
        raise UserError(f"{path}: array '{name}' {list(shape)} needs {nbytes} bytes, more than the limit of "
                        f"{limit} bytes (--max-tensor-bytes)")
