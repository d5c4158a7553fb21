"""`run` and `check`: build a compiled project, run it on the host or under QEMU, compare.

Outputs come back bit-exactly (hex of the float bits) and are compared with
onnxruntime on the same inputs; board builds also report flash and RAM bytes
from the ELF, and QEMU runs the exact number of executed instructions.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx

from onnx2mcu.project import SOURCE_MODEL, TEST_INPUTS
from onnx2mcu.codegen.board_project import write_board_files
from onnx2mcu.codegen.generate import dump_json, render_harness
from onnx2mcu.errors import UserError
from onnx2mcu.simulator.compare import Tolerance, compare, read_npz, run_onnxruntime
from onnx2mcu.simulator.elf import elf_sizes
from onnx2mcu.simulator.run_c import build, run_host, run_qemu
from onnx2mcu.targets import board_of_summary

HOST_DIR = ".host-build"
PROFILE_DIR = ".profile-build"


def read_report(project: Path) -> dict:
    path = project / "report.json"
    if not path.exists():
        raise UserError(f"{project}: no report.json; is this a folder written by `onnx2mcu compile`?")
    return json.loads(path.read_text())


def load_project_inputs(project: Path, report: dict, npz: str | None) -> dict[str, np.ndarray]:
    path = Path(npz) if npz else project / TEST_INPUTS
    values = read_npz(path)
    expected = report["inputs"]
    if set(values) != set(expected):
        raise UserError(f"{path}: inputs do not match the model: got {sorted(values)}, "
                        f"the model's inputs are {sorted(expected)}")
    for name, info in expected.items():
        if list(values[name].shape) != info["shape"]:
            raise UserError(f"{path}: input '{name}' has shape {list(values[name].shape)}, "
                            f"the model expects {info['shape']}")
        values[name] = values[name].astype(info["dtype"])
    return values


def _prepare(project: Path, report: dict, values: Mapping[str, np.ndarray], host: bool) -> Path:
    """The folder to build in: the project itself (board), or a host copy beside it."""
    harness = render_harness(report["prefix"], report["c_io"]["inputs"], report["c_io"]["outputs"], values)
    if not host:
        main = project / "main.c"
        if main.read_text() != harness:
            main.write_text(harness)
        return project
    build_dir = project / HOST_DIR
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir()
    sources = []
    for item in sorted(project.iterdir()):
        if item.suffix in (".c", ".h") and item.name not in ("startup.c", "o2m_io.c", "o2m_io.h"):
            shutil.copy2(item, build_dir / item.name)
            if item.suffix == ".c":
                sources.append(item.name)
    (build_dir / "main.c").write_text(harness)
    write_board_files("host", build_dir, sources)
    return build_dir


def expected_outputs(proto: onnx.ModelProto, report: dict,
                     values: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """onnxruntime's outputs; the simulator's when the model uses ops onnxruntime lacks, or
    when it runs in int8 with TFLite's fixed-point requantization (`--requant fixed`): then
    the C must equal the simulator bit for bit, and onnxruntime (which requantizes in float)
    is not the reference (docs/ARCHITECTURE.md, numerics).  MatMulInteger / ConvInteger (dynamic
    quantization) do not requantize: onnxruntime stays the reference of a model of only those."""
    custom = {n.domain for n in proto.graph.node} - {"", "ai.onnx"}
    precision = report.get("precision") or {}
    requantizing = precision.get("int8_nodes", 0) - precision.get("integer_products", 0)
    fixed_int8 = precision.get("requant") == "fixed" and requantizing > 0
    int8_io = report.get("int8_io")  # --int8-io: the C's I/O are int8 tensors inside the model
    # lossy options the build was made with (embedding compression...): the model file alone
    # gives other results, so the simulator of the same options is the reference
    lossy = report.get("reference_options") or {}
    if not custom and not fixed_int8 and not int8_io and not lossy:
        return run_onnxruntime(proto, values, list(report["outputs"])), "onnxruntime"
    from onnx2mcu.api import simulate

    was = {m["now"]: m["was"] for m in (int8_io or {}).get("inputs", [])}
    shapes = {was.get(name, name): info["shape"] for name, info in report["inputs"].items()}
    # the model was accepted when it was compiled (with whatever --max-tensor-bytes it took)
    sim = simulate(proto, input_shapes=shapes, inputs=values, scheduler="file-order",
                   check_onnxruntime=False, requant=precision.get("requant", "fixed"), int8_io=bool(int8_io),
                   max_tensor_bytes=1 << 40, **lossy)
    return sim.result.outputs, "simulator"


def profile_steps(project: Path, report: dict, values: Mapping[str, np.ndarray], board,
                  timeout: float | None = None) -> dict:
    """Instructions per schedule step under QEMU: the project rebuilt in PROFILE_DIR with
    -D<PREFIX>_PROFILE_MARKS (model.c then calls <prefix>_profile_mark(k) before step k and
    after the last), the plugin recording its counter at every entry to that function.

    A step's figure includes the marker call (a few instructions).  The profile build is a
    copy, so the project's own objects (and its instruction count) are those of the release
    build."""
    prefix = report["prefix"]
    build_dir = project / PROFILE_DIR
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir()
    for item in sorted(project.iterdir()):
        if item.is_file() and (item.suffix in (".c", ".h", ".ld") or item.name == "Makefile"):
            shutil.copy2(item, build_dir / item.name)
    (build_dir / "main.c").write_text(render_harness(prefix, report["c_io"]["inputs"], report["c_io"]["outputs"],
                                                     values))
    build(build_dir, board, make_vars={"EXTRA_CFLAGS": f"-D{prefix.upper()}_PROFILE_MARKS"})
    kwargs = {"timeout": timeout} if timeout else {}
    result = run_qemu(build_dir, board, step_symbol=f"{prefix}_profile_mark", **kwargs)
    steps = report["schedule"]
    counts = result.step_counts
    if len(counts) != len(steps) + 1:
        raise UserError(f"profile build of {project}: {len(counts)} step marks for {len(steps)} steps "
                        "(is model.c from an older onnx2mcu? compile again)")
    kernels = {n["node"]: n.get("kernel") for n in (report.get("precision") or {}).get("nodes", [])}
    rows = [{"step": i, "node": step["node"], "op": step["op"], "kernel": kernels.get(step["node"]),
             "instructions": counts[i + 1] - counts[i]} for i, step in enumerate(steps)]
    total = counts[-1] - counts[0]
    for row in rows:
        row["share"] = round(row["instructions"] / total, 4) if total else 0.0
    return {"board": board.name, "unit": "instructions (QEMU)", "steps": rows, "total": total}


def profile_table(profile: dict, limit: int = 60) -> str:
    """The profile as a markdown table, the costliest steps first order kept (schedule order)."""
    lines = ["| step | op | kernel | instructions | share | node |", "|---:|---|---|---:|---:|---|"]
    for row in profile["steps"][:limit]:
        name = row["node"] if len(row["node"]) <= 60 else row["node"][:57] + "..."
        lines.append(f"| {row['step']} | {row['op']} | {row['kernel'] or ''} | {row['instructions']:,} | "
                     f"{100 * row['share']:.1f}% | {name} |")
    if len(profile["steps"]) > limit:
        lines.append(f"| ... | {len(profile['steps']) - limit} more steps in report.json | | | | |")
    lines.append(f"| | total | | {profile['total']:,} | 100% | |")
    return "\n".join(lines)


def run_project_dir(project_dir: str, mode: str, npz: str | None = None,
                    count_instructions: bool = True, timeout: float | None = None,
                    tolerance: Tolerance | None = None, profile: bool = False) -> dict:
    """Build + run + read back + compare; mode is 'host' or 'qemu'.

    data["ok"] is the allclose verdict (see simulator/compare.Tolerance); the CLI turns a
    False into exit code 1, and data["agreement"] names the output and element that failed."""
    project = Path(project_dir)
    if not project.is_dir():
        raise UserError(f"{project}: no such folder; create it with `onnx2mcu compile MODEL -o {project}`")
    report = read_report(project)
    board = board_of_summary(report["board"])
    if mode == "qemu" and board.qemu_machine is None:
        raise UserError(f"{project}: built for {board.name}, which QEMU does not emulate; "
                        "compile with --board mps2-an386 or mps2-an500, or run with --host")
    values = load_project_inputs(project, report, npz)
    build_dir = _prepare(project, report, values, host=(mode == "host"))
    product = build(build_dir, "host" if mode == "host" else board)
    kwargs = {"timeout": timeout} if timeout else {}
    if mode == "host":
        result = run_host(build_dir, **kwargs)
    else:
        result = run_qemu(build_dir, board, count_instructions=count_instructions, **kwargs)
    if result.exit_code != 0:
        raise UserError(f"{product} exited with code {result.exit_code}: "
                        f"{(result.stderr or result.stdout).strip()[-400:]}")
    wire = {o["wire_name"]: o["name"] for o in report["c_io"]["outputs"]}
    outputs = {wire[k]: v for k, v in result.outputs().items()}
    for name, info in report["outputs"].items():
        outputs[name] = outputs[name].reshape(info["shape"])
    proto = onnx.load(str(project / SOURCE_MODEL))
    expected, reference = expected_outputs(proto, report, values)
    agreement = compare(outputs, expected, tolerance)
    data = {"mode": mode, "board": board.name if mode == "qemu" else "host", "reference": reference,
            "max_abs_err": agreement.max_abs_err, "max_rel_err": agreement.max_rel_err,
            "max_scaled_err": agreement.max_scaled_err, "ok": agreement.ok, "agreement": agreement.to_dict(), "table": agreement.table(),
            "arena_bytes": report["arena_bytes"], "weights_bytes": report["weights_bytes"],
            "run_seconds": round(result.seconds, 3)}
    if mode == "qemu":
        data["instructions"] = result.instructions
        data["inference_instructions"] = result.region_instructions
        sizes = elf_sizes(product)
        data["flash_bytes"] = sizes["flash_bytes"]
        data["ram_bytes"] = sizes["ram_bytes"]
        report.update(flash_bytes=sizes["flash_bytes"], ram_bytes=sizes["ram_bytes"])
        if profile:
            data["profile"] = report["profile"] = profile_steps(project, report, values, board, timeout)
        (project / "report.json").write_text(dump_json(report))
    data["outputs"] = outputs
    return data
