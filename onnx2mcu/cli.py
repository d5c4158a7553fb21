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
    from onnx2mcu.frontend import load
    from onnx2mcu.simulator.compare import load_npz

    model = resolve_model(args)
    graph = load(model, parse_input_shapes(args.input_shape))
    inputs = load_npz(args.inputs, graph) if args.inputs else None
    progress = _progress(len(graph.nodes), "simulate", quiet=args.json)
    try:
        report = api.simulate(model, graph=graph, inputs=inputs, scheduler=args.scheduler,
                              time_limit=args.time_limit, seed=args.seed,
                              check_onnxruntime=not args.no_check, progress=progress.update_to)
    finally:
        progress.close()
    data = report.to_dict()
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
    lines.append(f"scheduler  {sched['method']} ({sched['seconds']:.3f} s)")
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


# ----- parser ---------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from onnx2mcu import __version__
    from onnx2mcu.scheduler import METHODS

    parser = argparse.ArgumentParser(prog="onnx2mcu", description="ONNX to C99 for microcontrollers")
    parser.add_argument("--version", action="version", version=f"onnx2mcu {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", nargs="?", help="path of the .onnx model")
        p.add_argument("--example", help="a built-in model instead of a file: bert-tiny, cnn")
        p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                       help="bind an input's shape (repeatable)")
        p.add_argument("--json", action="store_true", help="print one JSON object")

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
    p.set_defaults(func=cmd_simulate)
    return parser


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
