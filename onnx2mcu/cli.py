"""The `onnx2mcu` command line.

Every user mistake surfaces as one line on stderr and exit code 2 (see
errors.UserError); output files are written to a temporary name and renamed.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from onnx2mcu.errors import UserError

EXIT_MISMATCH = 1  # run/check/simulate: an output outside tolerance
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


def parse_input_values(items: Sequence[str]) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in items:
        name, sep, text = item.rpartition("=")
        try:
            found[name] = float(text)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise UserError(f"--input-value '{item}': expected NAME=VALUE e.g. sample_rate=16000")
    return found


def pipeline_options(args: argparse.Namespace, **overrides):
    """The command's arguments -> pipeline.Options (absent arguments keep the Options defaults)."""
    from onnx2mcu.pipeline import Options

    values = {"input_shapes": parse_input_shapes(getattr(args, "input_shape", None))}
    if getattr(args, "input_value", None):
        values["input_values"] = parse_input_values(args.input_value)
    for name in ("compress_embeddings", "token_frequencies", "calibration_text", "tokenizer", "weights_budget", "embeddings_int8", "tile", "ram_budget", "board", "scheduler", "time_limit",
                 "inputs", "seed", "force", "prefix", "plot", "plot_layout", "binary_sign_zero", "max_tensor_bytes",
                 "format", "io", "requant",
                 "rewrites", "patch", "int8_io"):
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    if getattr(args, "no_check", False):
        values["check_onnxruntime"] = False
    if hasattr(args, "atol"):
        values["tolerance"] = tolerance_of(args)
    values.update(overrides)
    return Options(**values)


def print_notes(optimization: dict) -> None:
    """What graph_opt wants the user to know (an opt-in rewrite that changes results...)."""
    for note in optimization.get("optimize_notes", []):
        print(f"onnx2mcu: note: {note}", file=sys.stderr)


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
    from onnx2mcu.codegen.kernels import Selection, c_support
    from onnx2mcu.ops import unsupported_reason
    from onnx2mcu.pipeline import run
    from onnx2mcu.report import macs

    from dataclasses import replace

    model = resolve_model(args)
    options = pipeline_options(args, stop_after="load", check_supported=False)
    graph = run(model, options).graph
    if not any(unsupported_reason(node, graph) for node in graph.nodes):
        # what compile will see: after graph_opt (float islands, lowering, tiling)
        graph = run(model, replace(options, stop_after="optimize", check_supported=True)).graph
    node_macs = macs(graph)
    in_c = c_support(graph, tolerant=True)  # the host's (portable) kernels
    rows = []
    for node in graph.nodes:
        found = in_c[node.name]
        params = sum(graph.tensors[n].nbytes for n in node.inputs if n and graph.tensors[n].is_const)
        out = graph.tensors[node.outputs[0]] if node.outputs and node.outputs[0] in graph.tensors else None
        rows.append({"node": node.name, "op": node.op_type, "output_shape": list(out.shape) if out else None,
                     "param_bytes": params, "macs": node_macs[node.name],
                     "unsupported": unsupported_reason(node, graph),
                     "c_kernel": found.kernel.name if isinstance(found, Selection) else None,
                     "python_only": None if isinstance(found, Selection) else found})
    from onnx2mcu.report import precision_report

    precision = precision_report(graph)
    if precision is not None:
        dtype_of = {e["node"]: e["dtype"] for e in precision["nodes"]}
        for r in rows:
            r["dtype"] = dtype_of[r["node"]]
    unsupported = [r for r in rows if r["unsupported"]]
    summary = {"model": graph.source, "ops": len(rows), "weights_bytes": graph.weights_bytes,
               "macs": sum(node_macs.values()), "notes": graph.notes,
               "inputs": {n: list(graph.tensors[n].shape) for n in graph.inputs},
               "outputs": {n: list(graph.tensors[n].shape) for n in graph.outputs},
               "op_counts": _count(r["op"] for r in rows),
               "unsupported": [{"node": r["node"], "op": r["op"], "reason": r["unsupported"]}
                               for r in unsupported], "nodes": rows}
    if precision is not None:
        summary["precision"] = {k: v for k, v in precision.items() if k != "nodes"}
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"model   {graph.source}")
    for note in graph.notes:
        print(f"note    {note}")
    print(f"inputs  {summary['inputs']}\noutputs {summary['outputs']}")
    print(f"ops     {len(rows)}  ({', '.join(f'{k} {v}' for k, v in summary['op_counts'].items())})")
    print(f"weights {human_bytes(graph.weights_bytes)}   MACs {summary['macs']:,}")
    if precision is not None:
        print(precision_line(precision))
    print()
    width = min(max((len(r["node"]) for r in rows), default=4), 48)
    print(f"{'node':<{width}}  {'op':<20} {'output':<20} {'params':>10} {'MACs':>12}  C")
    for r in rows:
        flag = f"  UNSUPPORTED: {r['unsupported']}" if r["unsupported"] else (
            f"  python only: {r['python_only']}" if r["python_only"] else "")
        print(f"{r['node'][:width]:<{width}}  {r['op']:<20} {str(r['output_shape']):<20} "
              f"{r['param_bytes']:>10} {r['macs']:>12,}  {'-' if r['python_only'] else 'y'}{flag}")
    if unsupported:
        print(f"\n{len(unsupported)} unsupported node(s)")
    python_only = [r for r in rows if r["python_only"] and not r["unsupported"]]
    if python_only:
        print(f"{len(python_only)} node(s) only the Python reference runs (`compile` refuses them)")
    return 0


def _size(text: str) -> int:
    """argparse type of a byte size: 262144, 256KB, 256K, 1M (one line, exit 2, when wrong)."""
    from onnx2mcu.board_file import parse_bytes

    try:
        return parse_bytes(text, "size")
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("size: ", "")) from None


def _count(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# ----- simulate -------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from onnx2mcu.pipeline import run

    model = resolve_model(args)
    options = pipeline_options(args, simulate=True)
    optimized = run(model, replace(options, stop_after="optimize"))  # the op count, for the progress bar
    print_notes(optimized.optimization)
    progress = _progress(len(optimized.graph.nodes), "simulate", quiet=args.json)
    try:
        result = run(model, replace(options, progress=progress.update_to), graph=optimized.graph,
                     optimization=optimized.optimization)
    finally:
        progress.close()
    report = result.simulation
    summary = summary_of(result)
    data = {**report.to_dict(), **result.optimization, "summary": summary}
    status = 0 if report.agreement is None or report.agreement.passed else EXIT_MISMATCH
    from onnx2mcu.codegen.kernels import python_only
    from onnx2mcu.report import precision_report

    precision = precision_report(result.graph)
    if precision is not None:
        data["precision"] = {k: v for k, v in precision.items() if k != "nodes"}

    data["python_only"] = [{"node": name, "op": result.graph.node(name).op_type, "reason": why}
                           for name, why in python_only(result.graph).items()]
    if args.json:
        print(json.dumps(data))
        return status
    print(format_memory_report(data, summary, args.verbose))
    if "precision" in data:
        print(precision_line(data["precision"]))
    if data["python_only"]:
        print(f"python-only nodes: {', '.join(e['node'] + ' (' + e['op'] + ')' for e in data['python_only'])}"
              " (no C kernel: `compile` refuses them)")
    if args.plot:
        print(f"plot       {args.plot}")
    if args.plot_layout:
        print(f"layout     {args.plot_layout}")
    if report.agreement is not None and not report.agreement.ok:
        print(report.agreement.table())
        if report.agreement.binding:
            print(_mismatch_line("simulator", report.agreement.to_dict()))
        else:
            print(f"note: {report.agreement.note}")
    return status


def precision_line(precision: dict) -> str:
    islands = precision["float_islands"]
    where = (": " + ", ".join(f"{e['op']} '{e['node']}'" for e in islands[:6])
             + (" ..." if len(islands) > 6 else "")) if islands else ""
    dynamic = precision.get("dynamic_quantizers")
    how = f"requant {precision['requant']}" + (
        f"; {dynamic} DynamicQuantizeLinear compute activation scales at run time" if dynamic else "")
    return (f"int8       {precision['int8_nodes']} node(s) on int8 ({how}), "
            f"{precision['float_nodes']} in float{where}")


def summary_of(result) -> dict:
    """The shared text report's data for a pipeline result (onnx2mcu/report.report_summary)."""
    from onnx2mcu.report import report_summary

    return report_summary(result.graph, result.schedule, result.board, result.budget, result.optimization)


def format_memory_report(data: dict, summary: dict, verbose: bool = False) -> str:
    """simulate's text: the model, the report compile prints too, then what only simulate knows."""
    from onnx2mcu.report import format_summary

    lines = [f"model      {data['model']}"]
    lines += [f"note       {note}" for note in data["notes"]]
    lines.append(format_summary(summary, verbose))
    lines.append(f"live then  {', '.join(data['live_at_peak'][:6])}"
                 + (" ..." if len(data['live_at_peak']) > 6 else ""))
    sched = data["scheduler"]
    proof = ("proven optimal" if sched.get("optimal") else
             f"lower bound {sched['lower_bound']} B" if sched.get("lower_bound") else "not proven optimal")
    lines.append(f"scheduler  {sched['method']} ({sched['seconds']:.3f} s, {proof})")
    if data["max_rel_err"] is not None:
        verdict = data.get("agreement") or {}
        lines.append(f"vs onnxruntime  max_abs_err {data['max_abs_err']:.3g}  "
                     f"max_rel_err {data['max_rel_err']:.3g}"
                     + (f"  {_agree_word(verdict)} (atol {verdict['atol']:g}, "
                        f"rtol {verdict['rtol']:g})" if verdict else ""))
    return "\n".join(lines)


def _agree_word(verdict: dict) -> str:
    if verdict["ok"]:
        return "agree"
    return "DISAGREE" if verdict.get("binding", True) else "differ (fixed-point vs float requant, not a failure)"


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
    from onnx2mcu.pipeline import run

    check_output_path(args.output)
    done = run(resolve_model(args), pipeline_options(args, output=args.output))
    print_notes(done.optimization)
    result = done.compiled
    summary = summary_of(done)
    if args.json:
        data = {k: v for k, v in result.report.items() if k not in ("tensors",)}
        # report.json leaves timings out so that builds are byte-identical; print them here
        data["scheduler"] = {**data["scheduler"], "seconds": round(result.schedule.seconds, 4)}
        data["summary"] = summary
        print(json.dumps(data))
        return 0
    r = result.report
    from onnx2mcu.report import float_island_line, format_summary

    island = float_island_line(r.get("precision"))
    print(f"wrote      {result.out_dir}  (board {result.board.name})")
    if island:
        print(island)
    print(format_summary(summary, args.verbose))
    if args.format != "project":
        print(f"format     {args.format}: see {Path(result.out_dir) / 'README.md'}")
        return 0
    hint = "make -C " + str(args.output)
    print(f"build      {hint}" + ("   # then: onnx2mcu run " + str(args.output) + " --qemu"
                                   if result.board.qemu_machine else ""))
    return 0


def check_output_path(path) -> None:
    from onnx2mcu.frontend.validate import check_output_path as check

    check(path)


def cmd_run(args: argparse.Namespace) -> int:
    from onnx2mcu.runner import run_project_dir

    mode = "qemu" if args.qemu else "host"
    if args.profile and mode != "qemu":
        raise UserError("--profile counts instructions per step under QEMU: use it with --qemu")
    data = run_project_dir(args.dir, mode, npz=args.inputs, timeout=args.timeout,
                           tolerance=tolerance_of(args), profile=args.profile)
    outputs = data.pop("outputs")
    if args.outputs:
        import numpy as np

        from onnx2mcu.fileio import write_atomic

        path = args.outputs if str(args.outputs).endswith(".npz") else f"{args.outputs}.npz"
        buffer = io.BytesIO()
        np.savez(buffer, **{name: np.asarray(value) for name, value in outputs.items()})
        write_atomic(path, buffer.getvalue())
        data["outputs_file"] = path
    table = data.pop("table")
    status = 0 if data["ok"] else EXIT_MISMATCH
    if args.json:
        print(json.dumps(data))
        return status
    print(format_run(data))
    print(table)
    if data.get("profile"):
        from onnx2mcu.runner import profile_table

        print("\nprofile (instructions per schedule step, written to report.json):")
        print(profile_table(data["profile"]))
    if not data["ok"]:
        print(_mismatch_line(mode, data["agreement"]))
    return status


def tolerance_of(args: argparse.Namespace):
    from onnx2mcu.simulator.compare import Tolerance

    return Tolerance(atol=args.atol, rtol=args.rtol, int_lsb=args.int8_tolerance)


def _mismatch_line(stage: str, agreement: dict) -> str:
    """One line naming the first output outside tolerance and its worst element."""
    bad = [o for o in agreement["outputs"] if not o["ok"]]
    first = bad[0]
    return (f"onnx2mcu: {stage} outputs disagree with the reference: {len(bad)} output(s) outside "
            f"tolerance (atol {agreement['atol']:g}, rtol {agreement['rtol']:g}, integer "
            f"{agreement['int_tolerance']} LSB); first '{first['name']}' element {first['worst_index']}: "
            f"{first['ours']} vs {first['theirs']} ({first['mismatches']} of {first['elements']} elements)")


def format_run(data: dict) -> str:
    lines = [f"{data['mode']:<5} max_abs_err {data['max_abs_err']:.3g}  max_rel_err {data['max_rel_err']:.3g}"
             f"  (vs {data.get('reference', 'onnxruntime')})  {'agree' if data.get('ok', True) else 'DISAGREE'}"]
    if data.get("instructions") is not None:
        lines.append(f"      instructions {data['instructions']:,} (inference "
                     f"{(data.get('inference_instructions') or 0):,})")
    if data.get("flash_bytes") is not None:
        lines.append(f"      ELF flash {data['flash_bytes']} B  RAM {data['ram_bytes']} B")
    return "\n".join(lines)


def cmd_check(args: argparse.Namespace) -> int:
    from onnx2mcu.pipeline import run

    if args.output:
        check_output_path(args.output)
    tolerance = tolerance_of(args)
    temporary = args.output is None
    out_dir = args.output or tempfile.mkdtemp(prefix="onnx2mcu-check-")
    try:
        # one schedule, simulated and compiled: the simulator checks the very plan the C runs
        result = run(resolve_model(args), pipeline_options(args, simulate=True, output=out_dir,
                                                           tolerance=tolerance))
        print_notes(result.optimization)
        data = _check_stages(args, result.simulation, out_dir, tolerance)
    finally:
        if temporary:
            import shutil

            shutil.rmtree(out_dir, ignore_errors=True)
    if temporary:
        data["dir"] = None
    stages = [("simulate", data["simulate"]), ("host", data["host"]), ("qemu", data["qemu"])]
    failed = [(name, stage) for name, stage in stages if stage and stage.get("agreement")
              and not stage["agreement"]["ok"] and stage["agreement"].get("binding", True)]
    status = EXIT_MISMATCH if failed else 0
    if args.json:
        print(json.dumps(data))
        return status
    s, h, q = data["simulate"], data["host"], data["qemu"]
    print(f"model {data['model']}  board {args.board.name}  project "
          f"{out_dir if not temporary else '(temporary, removed)'}")
    print("| stage | max_abs_err | max_rel_err | verdict | peak/arena B | flash B | RAM B | instructions |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| simulate | {_err(s['max_abs_err'])} | {_err(s['max_rel_err'])} | {_verdict(s)} | "
          f"{s['peak_bytes']} / {s['arena_bytes']} | - | - | - |")
    print(f"| host | {_err(h['max_abs_err'])} | {_err(h['max_rel_err'])} | {_verdict(h)} | "
          f"- / {h['arena_bytes']} | - | - | - |")
    e = data.get("elf") or {}
    if e and data.get("qemu_board") != args.board.name:
        print(f"| build {args.board.name} | - | - | - | - | {e['flash_bytes']} | {e['ram_bytes']} | - |")
    if q:
        print(f"| qemu {data['qemu_label']} | {_err(q['max_abs_err'])} | {_err(q['max_rel_err'])} | {_verdict(q)} | "
              f"- / {q['arena_bytes']} | {q['flash_bytes']} | {q['ram_bytes']} | {q['instructions']:,} |")
    else:
        print(f"qemu skipped: {data['skipped']}")
    if q and q.get("profile"):
        from onnx2mcu.runner import profile_table

        print("\nprofile (instructions per schedule step under QEMU):")
        print(profile_table(q["profile"]))
    for name, stage in failed:
        print(f"\n{name}:")
        print(stage["table"])
    for name, stage in failed:
        print(_mismatch_line(name, stage["agreement"]))
    return status


def _check_stages(args, sim, out_dir, tolerance) -> dict:
    from onnx2mcu.runner import run_project_dir
    from onnx2mcu.simulator.run_c import have_tool

    sim_data = sim.to_dict()
    data: dict = {"model": sim_data["model"], "board": args.board.name, "dir": str(out_dir),
                  "simulate": {k: sim_data[k] for k in ("peak_bytes", "arena_bytes", "weights_bytes",
                                                         "peak_step", "max_abs_err", "max_rel_err",
                                                         "max_scaled_err", "agreement")}}
    if sim.agreement is not None:
        data["simulate"]["table"] = sim.agreement.table()
    data["host"] = _strip(run_project_dir(out_dir, "host", tolerance=tolerance))
    from onnx2mcu.board_check import board_build, stand_in
    from onnx2mcu.targets import get_board

    board = get_board(args.board)
    qemu_board = stand_in(board)
    data["qemu_board"] = qemu_board.name if qemu_board is not None else None
    data["qemu_label"] = board.name
    data["elf"] = None
    if have_tool("qemu-system-arm") and have_tool("arm-none-eabi-gcc") and qemu_board is not None:
        qemu_dir = out_dir
        if qemu_board is not board:  # same core family, emulated; the real board's build gives the sizes
            from onnx2mcu.build import compile_model

            data["elf"] = board_build(out_dir, board)
            qemu_dir = str(Path(out_dir) / f".qemu-{qemu_board.name}")
            compile_model(resolve_model(args), qemu_dir, board=qemu_board, inputs=sim.inputs, graph=sim.graph,
                          scheduler=args.scheduler, time_limit=args.time_limit, force=True)
            data["qemu_label"] = f"{qemu_board.name} (stand-in for {board.name}, {board.core})"
        data["qemu"] = _strip(run_project_dir(qemu_dir, "qemu", timeout=args.timeout, tolerance=tolerance,
                                              profile=args.profile))
        if qemu_board is board:
            data["elf"] = {"flash_bytes": data["qemu"]["flash_bytes"], "ram_bytes": data["qemu"]["ram_bytes"]}
    else:
        data["qemu"] = None
        if qemu_board is None and have_tool("arm-none-eabi-gcc") and not board.is_host:
            data["elf"] = board_build(out_dir, board)
            data["skipped"] = f"no emulated board for {board.core} in the registry"
        elif board.is_host:
            data["skipped"] = "the host board runs no QEMU stage"
        else:
            data["skipped"] = ("qemu-system-arm or arm-none-eabi-gcc not installed: apt-get install -y "
                               "--no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
    return data


def _verdict(stage: dict) -> str:
    agreement = stage.get("agreement")
    if not agreement:
        return "-"
    if agreement["ok"]:
        return "ok"
    return "FAIL" if agreement.get("binding", True) else "differs (not binding)"


def _err(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _strip(data: dict) -> dict:
    data.pop("outputs", None)
    return data


def tolerance_args(p: argparse.ArgumentParser) -> None:
    from onnx2mcu.simulator.compare import DEFAULT_ATOL, DEFAULT_INT8_TOLERANCE, DEFAULT_RTOL

    p.add_argument("--atol", type=float, default=DEFAULT_ATOL,
                   help=f"absolute tolerance of float outputs (numpy allclose; default {DEFAULT_ATOL:g})")
    p.add_argument("--rtol", type=float, default=DEFAULT_RTOL,
                   help=f"relative tolerance of float outputs (default {DEFAULT_RTOL:g})")
    p.add_argument("--int8-tolerance", type=int, default=DEFAULT_INT8_TOLERANCE, metavar="N",
                   help="integer outputs may differ by N LSB (default: exact)")


def board_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--board", help=f"target board{what} (see `onnx2mcu boards`; chip names such as "
                                   "STM32F746ZG work too); default host")
    p.add_argument("--board-file", metavar="BOARD.toml",
                   help="a custom board: core, flash, ram, clock_hz, origins, [[external]] memory "
                        "(README, 'Boards')")


def verbose_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also print one line per node: MACs, weight and output bytes, C kernel, dtype")


# ----- parser ---------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from onnx2mcu import __version__
    from onnx2mcu.scheduler import METHODS

    parser = argparse.ArgumentParser(prog="onnx2mcu", description="ONNX to C99 for microcontrollers")
    parser.add_argument("--version", action="version", version=f"onnx2mcu {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", nargs="?", help="path of the .onnx model")
        p.add_argument("--example", help="a built-in model instead of a file: " + ", ".join(example_names()))
        p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                       help="bind an input's shape (repeatable)")
        p.add_argument("--input-value", action="append", metavar="NAME=VALUE",
                       help="bind a scalar input to a constant, e.g. to fix an If (repeatable)")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--max-tensor-bytes", type=int, metavar="BYTES",
                       help="refuse models with a larger tensor, before reading it (default 1 GiB, "
                            "or a bigger board's largest memory)")

    def optimize_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--compress-embeddings", metavar="RATIO|BYTES",
                       help="clustered low-rank compression of embedding tables, e.g. 4x or 500000 "
                            "(the tables' ratio, or bytes for the tables)")
        p.add_argument("--token-frequencies", metavar="FILE",
                       help="counts per token id (.npy, or text: one count per line or 'id count' "
                            "lines): compress for the frequency-weighted error, frequent rows exact")
        p.add_argument("--calibration-text", metavar="FILE",
                       help="text whose token counts (with --tokenizer) weight the compression")
        p.add_argument("--tokenizer", metavar="PATH",
                       help="transformers tokenizer folder for --calibration-text")
        p.add_argument("--weights-budget", metavar="BYTES|board",
                       help="compress the embedding tables until the whole model's flash image "
                            "(weights + code allowance) fits BYTES (e.g. 1M) or the board's flash")
        p.add_argument("--embeddings-int8", action="store_true", default=None,
                       help="compressed embedding factors in int8 (about 4x fewer bytes per factor; "
                            "lossy, reported)")
        p.add_argument("--tile", choices=("auto", "none"), default="auto",
                       help="tile attention and FFN so long sequences fit in RAM")
        p.add_argument("--ram-budget", type=_size, metavar="BYTES",
                       help="RAM the tiled model may use, e.g. 262144 or 256KB (default: the board's)")
        p.add_argument("--binary-sign-zero", choices=("exact", "plus-one"), default="exact",
                       help="binary layers from ONNX Sign: exact keeps Sign(0) = 0; plus-one maps 0 "
                            "to +1 (faster, differs from ONNX at exact zeros; reported)")
        p.add_argument("--requant", choices=("fixed", "float"), default="fixed",
                       help="int8 requantization: fixed (TFLite's integer arithmetic, bit-exact with "
                            "TFLite Micro) or float (float32 rescale, as onnxruntime)")
        p.add_argument("--rewrites", metavar="none|auto|all|LIST", default="auto",
                       help="memory rewrites (act_on_load, eager_accumulation, partial_conv, inplace_conv), each kept "
                            "only where it lowers the scheduled peak; auto (default): and where the board's kernels "
                            "run it at most 2%% slower (estimate); all: whatever the speed")
        p.add_argument("--int8-io", action="store_true", default=False,
                       help="a model quantized inside with float I/O takes and gives its int8 tensors (the edge "
                            "QuantizeLinear/DequantizeLinear run outside, as TinyEngine and TFLite's int8-I/O "
                            "conversion do; model.h gives their scales and zero points)")
        p.add_argument("--patch", choices=("auto", "none"), default="none",
                       help="patch-based inference (MCUNetV2): run the early int8 conv layers tile by tile "
                            "(halo recomputed) where that lowers the peak; reports the extra MACs; default none")

    p = sub.add_parser("inspect", help="ops, parameter bytes, MACs per op, unsupported ops")
    model_args(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("simulate", help="peak memory and outputs vs onnxruntime")
    model_args(p)
    p.add_argument("--inputs", help=".npz with one array per model input (default: seeded random)")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    p.add_argument("--scheduler", choices=METHODS, default=METHODS[0])
    p.add_argument("--time-limit", type=float, default=60.0, help="scheduler time limit, seconds")
    p.add_argument("--plot", help="draw live bytes per step to this PNG (the board's RAM and the op at the "
                                  "peak marked)")
    p.add_argument("--plot-layout", metavar="PNG",
                   help="draw the arena layout to this PNG: each planned buffer as offset x steps")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    board_args(p, ": plan with its memory budget exactly as `compile` does")
    verbose_arg(p)
    tolerance_args(p)
    optimize_args(p)
    p.set_defaults(func=cmd_simulate)

    def compile_args(p: argparse.ArgumentParser) -> None:
        board_args(p, "")
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
    verbose_arg(p)
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
    p.add_argument("--outputs", metavar="FILE.npz",
                   help="save the outputs read back from the device, in their own dtypes")
    p.add_argument("--timeout", type=float, default=None, help="seconds before the run is stopped")
    p.add_argument("--json", action="store_true")
    p.add_argument("--profile", action="store_true",
                   help="also build with per-step markers and print instructions per schedule step "
                        "(QEMU only; written to report.json)")
    tolerance_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="compile + simulate + run on host + run under QEMU, one table")
    model_args(p)
    compile_args(p)
    p.add_argument("-o", "--output", help="project folder (default: a temporary one)")
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--profile", action="store_true",
                   help="print instructions per schedule step of the QEMU run (a marker build)")
    tolerance_args(p)
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
    from onnx2mcu.targets import ALIASES

    print("also accepted: " + ", ".join(f"{alias} -> {name}" for alias, name in ALIASES.items()
                                        if not alias.startswith("an")))
    print("a board of your own: --board-file BOARD.toml (README, 'Boards')")
    return 0


def configure_limits(args: argparse.Namespace) -> None:
    """--max-tensor-bytes, else the board's largest memory, bounds every tensor the frontend reads."""
    from onnx2mcu.frontend import validate

    limit = getattr(args, "max_tensor_bytes", None)
    if limit is None and getattr(args, "board", None):
        from onnx2mcu.targets import get_board

        limit = validate.board_tensor_limit(get_board(args.board))
    validate.configure(limit if limit is not None else validate.DEFAULT_MAX_TENSOR_BYTES)


EXIT_INTERNAL_ERROR = 70  # sysexits EX_SOFTWARE: a bug in onnx2mcu
EXIT_OUT_OF_MEMORY = 3


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    from onnx2mcu.frontend import validate

    try:
        return _main(argv)
    finally:
        validate.configure(validate.DEFAULT_MAX_TENSOR_BYTES)  # the limit is per command


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if hasattr(args, "board"):  # --board NAME / --board-file FILE -> the Board, checked at once
            from onnx2mcu.board_file import resolve_board

            args.board = resolve_board(args.board, getattr(args, "board_file", None))
        configure_limits(args)
        return args.func(args)
    except UserError as exc:
        print(f"onnx2mcu: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError:
        print("onnx2mcu: error: out of memory; the model or its inputs need more memory than this "
              "machine has (lower --max-tensor-bytes to refuse such models early)", file=sys.stderr)
        return EXIT_OUT_OF_MEMORY
    except BrokenPipeError:  # output piped into `head` and the like (an OSError: caught first)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # the file system refused (disk full, permissions): not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"onnx2mcu: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:  # noqa: BLE001 - the boundary: no traceback unless --debug
        from onnx2mcu import __version__
        from onnx2mcu.frontend.validate import library_error

        error = library_error(exc, getattr(args, "model", None) or getattr(args, "dir", None))
        if error is not None:
            if args.debug:
                import traceback

                traceback.print_exc()
            print(f"onnx2mcu: error: {_one_line(error)}", file=sys.stderr)
            return EXIT_USER_ERROR
        if args.debug:
            raise
        command = " ".join(["onnx2mcu", *(sys.argv[1:] if argv is None else argv)])
        print(f"onnx2mcu: internal error ({type(exc).__name__}: {_one_line(exc)[:200]}); this is a bug "
              f"in onnx2mcu {__version__}: please report it with the command `{command}` and the "
              "model (rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    except KeyboardInterrupt:
        print("onnx2mcu: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
