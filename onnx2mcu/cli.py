"""The `onnx2mcu` command line.

Every user mistake surfaces as one line on stderr and exit code 2 (see
errors.UserError); output files are written to a temporary name and renamed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from onnx2mcu.errors import UserError

EXIT_USER_ERROR = 2


def parse_input_shapes(items: Sequence[str] | None) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for item in items or []:
        name, sep, dims = item.rpartition("=")
        if not sep or not name:
            raise UserError(f"--input-shape '{item}': expected NAME=D0,D1,... e.g. input_1=1,49,10,1")
        try:
            shapes[name] = [int(d) for d in dims.replace("x", ",").split(",") if d.strip()]
        except ValueError:
            raise UserError(f"--input-shape '{item}': dims must be integers, e.g. {name}=1,128") from None
    return shapes


def load_graph(args: argparse.Namespace, board=None):
    """Model argument -> (model, optimized IR, what graph_opt did)."""
    from onnx2mcu.frontend import load
    from onnx2mcu.graph_opt import OptimizeOptions, optimize

    model = resolve_model(args)
    graph = load(model, parse_input_shapes(args.input_shape))
    budget = getattr(args, "ram_budget", None)
    if budget is None and board is not None and board.ram_bytes:
        from onnx2mcu.codegen.board_project import DEFAULT_HEAP_BYTES, DEFAULT_STACK_BYTES

        budget = board.ram_bytes - DEFAULT_STACK_BYTES - DEFAULT_HEAP_BYTES
    options = OptimizeOptions(compress_embeddings=getattr(args, "compress_embeddings", None),
                              tile=getattr(args, "tile", "auto"), ram_budget=budget)
    graph, done = optimize(graph, options)
    return model, graph, done


def example_names() -> list[str]:
    from onnx2mcu.examples import EXAMPLES

    return sorted(EXAMPLES)


def resolve_model(args: argparse.Namespace):
    """The model argument: a path, or a built-in example with --example."""
    if getattr(args, "example", None):
        from onnx2mcu.examples import build_example

        return build_example(args.example)
    if not args.model:
        raise UserError("give a MODEL path or --example NAME")
    return args.model


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temporary file in the same folder, so no half-written file is ever left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        from onnx2mcu.codegen.output_dir import default_file_mode

        os.fchmod(fd, default_file_mode())  # mkstemp makes 0600; the user's umask decides
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.2f} MiB"


# ----- inspect --------------------------------------------------------------
def cmd_inspect(args: argparse.Namespace) -> int:
    from onnx2mcu.frontend.convert import load
    from onnx2mcu.ops import unsupported_reason
    from onnx2mcu.report import macs

    graph = load(resolve_model(args), parse_input_shapes(args.input_shape), check=False)
    node_macs = macs(graph)
    rows = []
    for node in graph.nodes:
        params = sum(graph.tensors[n].nbytes for n in node.inputs if n and graph.tensors[n].is_const)
        out = graph.tensors[node.outputs[0]] if node.outputs and node.outputs[0] in graph.tensors else None
        rows.append({"node": node.name, "op": node.op_type, "output_shape": list(out.shape) if out else None,
                     "param_bytes": params, "macs": node_macs[node.name],
                     "unsupported": unsupported_reason(node, graph)})
    unsupported = [r for r in rows if r["unsupported"]]
    summary = {"model": graph.source, "ops": len(rows), "weights_bytes": graph.weights_bytes,
               "macs": sum(node_macs.values()), "notes": graph.notes,
               "inputs": {n: list(graph.tensors[n].shape) for n in graph.inputs},
               "outputs": {n: list(graph.tensors[n].shape) for n in graph.outputs},
               "op_counts": _count(r["op"] for r in rows),
               "unsupported": [{"node": r["node"], "op": r["op"], "reason": r["unsupported"]}
                               for r in unsupported], "nodes": rows}
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"model   {graph.source}")
    for note in graph.notes:
        print(f"note    {note}")
    print(f"inputs  {summary['inputs']}\noutputs {summary['outputs']}")
    print(f"ops     {len(rows)}  ({', '.join(f'{k} {v}' for k, v in summary['op_counts'].items())})")
    print(f"weights {human_bytes(graph.weights_bytes)}   MACs {summary['macs']:,}\n")
    width = min(max((len(r["node"]) for r in rows), default=4), 48)
    print(f"{'node':<{width}}  {'op':<20} {'output':<20} {'params':>10} {'MACs':>12}")
    for r in rows:
        flag = f"  UNSUPPORTED: {r['unsupported']}" if r["unsupported"] else ""
        print(f"{r['node'][:width]:<{width}}  {r['op']:<20} {str(r['output_shape']):<20} "
              f"{r['param_bytes']:>10} {r['macs']:>12,}{flag}")
    if unsupported:
        print(f"\n{len(unsupported)} unsupported node(s)")
    return 0


def _count(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# ----- simulate -------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    from onnx2mcu import api
    from onnx2mcu.simulator.compare import load_npz

    model, graph, done = load_graph(args)
    inputs = load_npz(args.inputs, graph) if args.inputs else None
    progress = _progress(len(graph.nodes), "simulate", quiet=args.json)
    try:
        report = api.simulate(model, graph=graph, inputs=inputs, scheduler=args.scheduler,
                              time_limit=args.time_limit, seed=args.seed,
                              check_onnxruntime=not args.no_check, progress=progress.update_to)
    finally:
        progress.close()
    data = {**report.to_dict(), **done}
    if args.plot:
        from onnx2mcu.simulator.plot import plot_memory

        plot_memory(data, args.plot)
    if args.json:
        print(json.dumps(data))
        return 0
    print(format_memory_report(data))
    if args.plot:
        print(f"plot       {args.plot}")
    return 0


def format_memory_report(data: dict) -> str:
    lines = [f"model      {data['model']}"]
    lines += [f"note       {note}" for note in data["notes"]]
    lines.append(f"ops        {data['ops']}   MACs {data['macs']:,}")
    lines.append(f"weights    {human_bytes(data['weights_bytes'])} ({data['weights_bytes']} B, flash)")
    lines.append(f"peak RAM   {human_bytes(data['peak_bytes'])} ({data['peak_bytes']} B) at step "
                 f"{data['peak_step']}: {data['peak_node']} ({data['peak_op']})")
    lines.append(f"arena      {human_bytes(data['arena_bytes'])} ({data['arena_bytes']} B)")
    lines.append(f"live then  {', '.join(data['live_at_peak'][:6])}"
                 + (" ..." if len(data['live_at_peak']) > 6 else ""))
    sched = data["scheduler"]
    proof = ("proven optimal" if sched.get("optimal") else
             f"lower bound {sched['lower_bound']} B" if sched.get("lower_bound") else "not proven optimal")
    lines.append(f"scheduler  {sched['method']} ({sched['seconds']:.3f} s, {proof})")
    if data["max_rel_err"] is not None:
        lines.append(f"vs onnxruntime  max_abs_err {data['max_abs_err']:.3g}  "
                     f"max_rel_err {data['max_rel_err']:.3g}")
    return "\n".join(lines)


class _NoProgress:
    def update_to(self, step: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Progress(_NoProgress):
    def __init__(self, total: int, label: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=label, unit="op", leave=False, file=sys.stderr)

    def update_to(self, step: int) -> None:
        self.bar.update(step + 1 - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def _progress(total: int, label: str, quiet: bool = False):
    if quiet or not sys.stderr.isatty() or total < 50:
        return _NoProgress()
    return _Progress(total, label)


# ----- compile / run / check ---------------------------------------------------
def cmd_compile(args: argparse.Namespace) -> int:
    from onnx2mcu.build import compile_model
    from onnx2mcu.simulator.compare import load_npz
    from onnx2mcu.targets import get_board

    model, graph, done = load_graph(args, get_board(args.board))
    inputs = load_npz(args.inputs, graph) if args.inputs else None
    result = compile_model(model, args.output, board=args.board, inputs=inputs, graph=graph,
                           scheduler=args.scheduler, time_limit=args.time_limit, force=args.force,
                           prefix=args.prefix, seed=args.seed, optimization=done, fmt=args.format,
                           io=args.io)
    if args.json:
        data = {k: v for k, v in result.report.items() if k not in ("tensors",)}
        # report.json leaves timings out so that builds are byte-identical; print them here
        data["scheduler"] = {**data["scheduler"], "seconds": round(result.schedule.seconds, 4)}
        print(json.dumps(data))
        return 0
    r = result.report
    print(f"wrote      {result.out_dir}  (board {result.board.name})")
    print(f"ops        {r['ops']}")
    print(f"arena      {human_bytes(r['arena_bytes'])} ({r['arena_bytes']} B; peak {r['peak_bytes']} B "
          f"at step {r['peak_step']}: {r['peak_node']})")
    print(f"weights    {human_bytes(r['weights_bytes'])} ({r['weights_bytes']} B, flash)")
    if args.format != "project":
        print(f"format     {args.format}: see {Path(result.out_dir) / 'README.md'}")
        return 0
    hint = "make -C " + str(args.output)
    print(f"build      {hint}" + ("   # then: onnx2mcu run " + str(args.output) + " --qemu"
                                   if result.board.qemu_machine else ""))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from onnx2mcu.runner import run_project_dir

    mode = "qemu" if args.qemu else "host"
    from onnx2mcu.board_check import agrees
    from onnx2mcu.runner import read_report

    data = run_project_dir(args.dir, mode, npz=args.inputs, timeout=args.timeout)
    data.pop("outputs")
    data["agree"] = agrees(data, read_report(Path(args.dir))["outputs"], args.rtol, args.atol)
    status = 0 if data["agree"] else 1
    if args.json:
        print(json.dumps(data))
        return status
    print(format_run(data))
    if not data["agree"]:
        print("outputs DIFFER from the reference beyond the tolerance (--rtol/--atol)")
    return status


def format_run(data: dict) -> str:
    lines = [f"{data['mode']:<5} max_abs_err {data['max_abs_err']:.3g}  max_rel_err {data['max_rel_err']:.3g}"
             f"  (vs {data.get('reference', 'onnxruntime')})"]
    if data.get("instructions") is not None:
        lines.append(f"      instructions {data['instructions']:,} (inference "
                     f"{(data.get('inference_instructions') or 0):,})")
    if data.get("flash_bytes") is not None:
        lines.append(f"      ELF flash {data['flash_bytes']} B  RAM {data['ram_bytes']} B")
    return "\n".join(lines)


def cmd_check(args: argparse.Namespace) -> int:
    from onnx2mcu import api
    from onnx2mcu.simulator.compare import load_npz
    from onnx2mcu.targets import get_board

    model, graph, done = load_graph(args, get_board(args.board))
    inputs = load_npz(args.inputs, graph) if args.inputs else None
    sim = api.simulate(model, graph=graph, inputs=inputs, scheduler=args.scheduler,
                       time_limit=args.time_limit, seed=args.seed)
    out_dir = args.output or tempfile.mkdtemp(prefix="onnx2mcu-check-")
    try:
        return _check_in(args, model, graph, done, sim, out_dir)
    finally:
        if not args.output:
            import shutil

            shutil.rmtree(out_dir, ignore_errors=True)  # the temporary project is ours: leave nothing behind


def _check_in(args: argparse.Namespace, model, graph, done, sim, out_dir: str) -> int:
    from onnx2mcu.board_check import agrees, board_build, stand_in
    from onnx2mcu.build import compile_model
    from onnx2mcu.runner import run_project_dir
    from onnx2mcu.simulator.run_c import have_tool
    from onnx2mcu.targets import get_board

    compile_model(model, out_dir, board=args.board, inputs=sim.inputs, graph=graph,
                  scheduler=args.scheduler, time_limit=args.time_limit, force=args.force,
                  optimization=done)
    sim_data = sim.to_dict()
    data: dict = {"model": sim_data["model"], "board": args.board, "dir": str(out_dir),
                  "simulate": {k: sim_data[k] for k in ("peak_bytes", "arena_bytes", "weights_bytes",
                                                         "peak_step", "max_abs_err", "max_rel_err")}}
    data["host"] = _strip(run_project_dir(out_dir, "host"))
    board = get_board(args.board)
    qemu_board = stand_in(board)
    label = args.board
    if have_tool("qemu-system-arm") and have_tool("arm-none-eabi-gcc") and qemu_board is not None:
        qemu_dir = out_dir
        if qemu_board is not board:  # same core family, emulated; the real board's build gives the sizes
            data["elf"] = board_build(out_dir, board)
            qemu_dir = str(Path(out_dir) / f".qemu-{qemu_board.name}")
            compile_model(model, qemu_dir, board=qemu_board, inputs=sim.inputs, graph=graph,
                          scheduler=args.scheduler, time_limit=args.time_limit, force=True, optimization=done)
            label = f"{qemu_board.name} (stand-in for {board.name}, {board.core})"
        data["qemu"] = _strip(run_project_dir(qemu_dir, "qemu", timeout=args.timeout))
        data["qemu_board"] = qemu_board.name
        if qemu_board is board:
            data["elf"] = {"flash_bytes": data["qemu"]["flash_bytes"], "ram_bytes": data["qemu"]["ram_bytes"]}
    elif qemu_board is None and have_tool("arm-none-eabi-gcc") and not board.is_host:
        data["qemu"] = None
        data["elf"] = board_build(out_dir, board)
        data["skipped"] = f"no emulated board for {board.core} in the registry"
    else:
        data["qemu"] = None
        data["elf"] = None
        data["skipped"] = ("qemu-system-arm or arm-none-eabi-gcc not installed: apt-get install -y "
                           "--no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
    outputs = json.loads((Path(out_dir) / "report.json").read_text())["outputs"]
    data["agree"] = all(agrees(data[k], outputs, args.rtol, args.atol) for k in ("host", "qemu"))
    status = 0 if data["agree"] else 1
    if args.json:
        print(json.dumps(data))
        return status
    s, h, q = data["simulate"], data["host"], data["qemu"]
    where = out_dir if args.output else "(temporary, removed)"
    print(f"model {data['model']}  board {args.board}  project {where}")
    print("| stage | max_rel_err | peak/arena B | flash B | RAM B | instructions |")
    print("|---|---|---|---|---|---|")
    print(f"| simulate | {_err(s['max_rel_err'])} | {s['peak_bytes']} / {s['arena_bytes']} | - | - | - |")
    print(f"| host | {_err(h['max_rel_err'])} | - / {h['arena_bytes']} | - | - | - |")
    e = data.get("elf") or {}
    if q and data["qemu_board"] != args.board:
        print(f"| build {args.board} | - | - | {e['flash_bytes']} | {e['ram_bytes']} | - |")
    if q:
        print(f"| qemu {label} | {_err(q['max_rel_err'])} | - / {q['arena_bytes']} | {q['flash_bytes']} | "
              f"{q['ram_bytes']} | {q['instructions']:,} |")
    else:
        if e:
            print(f"| build {args.board} | - | - | {e['flash_bytes']} | {e['ram_bytes']} | - |")
        print(f"qemu skipped: {data['skipped']}")
    if not data["agree"]:
        print("outputs DIFFER from the reference beyond the tolerance (--rtol/--atol)")
    return status


def _err(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _strip(data: dict) -> dict:
    data.pop("outputs", None)
    return data


# ----- parser ---------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from onnx2mcu import __version__
    from onnx2mcu.scheduler import METHODS

    parser = argparse.ArgumentParser(prog="onnx2mcu", description="ONNX to C99 for microcontrollers")
    parser.add_argument("--version", action="version", version=f"onnx2mcu {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", nargs="?", help="path of the .onnx model")
        p.add_argument("--example", help="a built-in model instead of a file: " + ", ".join(example_names()))
        p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                       help="bind an input's shape (repeatable)")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    def optimize_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--compress-embeddings", metavar="RATIO|BYTES",
                       help="clustered low-rank compression of embedding tables, e.g. 4x or 500000")
        p.add_argument("--tile", choices=("auto", "none"), default="auto",
                       help="tile attention and FFN so long sequences fit in RAM")
        p.add_argument("--ram-budget", type=int, metavar="BYTES",
                       help="RAM the tiled model may use (default: the board's)")

    p = sub.add_parser("inspect", help="ops, parameter bytes, MACs per op, unsupported ops")
    model_args(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("simulate", help="peak memory and outputs vs onnxruntime")
    model_args(p)
    p.add_argument("--inputs", help=".npz with one array per model input (default: seeded random)")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    p.add_argument("--scheduler", choices=METHODS, default=METHODS[0])
    p.add_argument("--time-limit", type=float, default=60.0, help="scheduler time limit, seconds")
    p.add_argument("--plot", help="draw live bytes per step to this PNG")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    optimize_args(p)
    p.set_defaults(func=cmd_simulate)

    def compile_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--board", default="host", help="target board (see `onnx2mcu boards`)")
        p.add_argument("--inputs", help=".npz test inputs compiled into the harness (default: seeded random)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--scheduler", choices=METHODS, default=METHODS[0])
        p.add_argument("--time-limit", type=float, default=60.0)
        p.add_argument("--force", action="store_true", help="emit even if the model does not fit the board, or into a non-empty "
                       "folder onnx2mcu did not write (nothing of yours is deleted or overwritten)")
        optimize_args(p)

    p = sub.add_parser("compile", help="write C sources, kernels and a board project")
    model_args(p)
    compile_args(p)
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--prefix", default="model", help="C name prefix (model_run, MODEL_ARENA_BYTES)")
    p.add_argument("--io", choices=("semihosting", "rtt"), default="semihosting",
                   help="how the harness reports outputs: semihosting (QEMU, debuggers) or a SEGGER-RTT "
                        "control block in RAM (any Cortex-M board through pyOCD/OpenOCD/GDB)")
    p.add_argument("--format", choices=("project", "library", "cmake", "zephyr"), default="project",
                   help="project: library + harness + board files + Makefile; library: only the model's C "
                        "and the kernels it uses; cmake: + CMakeLists.txt and an arm-none-eabi toolchain "
                        "file; zephyr: + zephyr/module.yml and Kconfig")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("run", help="build a compiled folder, run it on the host or under QEMU, compare")
    p.add_argument("dir")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", action="store_true")
    where.add_argument("--qemu", action="store_true")
    p.add_argument("--inputs", help=".npz inputs (default: the compiled-in test inputs)")
    p.add_argument("--timeout", type=float, default=None, help="seconds before the run is stopped")
    p.add_argument("--rtol", type=float, default=None, help="relative tolerance (default 1e-4; integer outputs: exact)")
    p.add_argument("--atol", type=float, default=None, help="absolute tolerance (default 1e-5; integer outputs: exact)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="compile + simulate + run on host + run under QEMU, one table")
    model_args(p)
    compile_args(p)
    p.add_argument("-o", "--output", help="project folder (default: a temporary one)")
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--rtol", type=float, default=None, help="relative tolerance (default 1e-4; integer outputs: exact)")
    p.add_argument("--atol", type=float, default=None, help="absolute tolerance (default 1e-5; integer outputs: exact)")
    p.set_defaults(func=cmd_check)

    add_flash_parser(sub)

    p = sub.add_parser("boards", help="list the supported boards")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_boards)
    return parser


# ----- flash (self-contained: its parser block and its command) ----------------
def add_flash_parser(sub) -> None:
    p = sub.add_parser("flash", help="build .elf/.hex/.bin, program a board, read the results back")
    p.add_argument("dir", help="a folder written by `onnx2mcu compile --board NAME` (--io rtt to read results)")
    p.add_argument("--probe", nargs="+", metavar=("pyocd|openocd|gdb", "HOST:PORT"), required=True,
                   help="pyocd, openocd, or gdb HOST:PORT (any GDB server, e.g. qemu-system-arm -S -gdb)")
    p.add_argument("--target", help="the probe's target name (pyOCD target type / OpenOCD config file)")
    p.add_argument("--read-results", action="store_true",
                   help="run to the end, read the outputs over RTT and compare them with the simulator")
    p.add_argument("--dry-run", action="store_true", help="print the commands / API calls, run nothing")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_flash)


def cmd_flash(args: argparse.Namespace) -> int:
    from onnx2mcu.flash import PROBES, flash

    probe, *rest = args.probe
    if probe not in PROBES or len(rest) > 1 or (rest and probe != "gdb"):
        raise UserError(f"--probe {' '.join(args.probe)}: expected pyocd, openocd, or gdb HOST:PORT")
    data = flash(args.dir, probe, address=rest[0] if rest else None, target=args.target,
                 read_results=args.read_results, dry_run=args.dry_run, timeout=args.timeout)
    if args.json:
        print(json.dumps(data))
    elif args.dry_run:
        print("\n".join(data["plan"]))
    else:
        print(f"flashed    {args.dir} to {data['board']} via {probe}")
        if args.read_results:
            print(f"results    max_abs_err {data['max_abs_err']:.3g}  max_rel_err {data['max_rel_err']:.3g}  "
                  f"(vs {data['reference']}): {'agree' if data['agree'] else 'DIFFER'}")
    return 0 if data.get("agree", True) else 1


def cmd_boards(args: argparse.Namespace) -> int:
    from onnx2mcu.targets import BOARDS

    rows = [b.summary() for b in BOARDS.values()]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'board':<16} {'core':<14} {'flash':>10} {'RAM':>10}  qemu")
    for r in rows:
        print(f"{r['name']:<16} {r['core']:<14} {human_bytes(r['flash_bytes']):>10} "
              f"{human_bytes(r['ram_bytes']):>10}  {r['qemu_machine'] or '-'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"onnx2mcu: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("onnx2mcu: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
