"""Fuzz the front door: mutate real ONNX files and run the CLI on every mutant.

    python benchmarks/fuzz.py --mutants 3000 [--seed 0] [--jobs 2] [--markdown benchmarks/fuzz.md]

Byte-level mutations (bit flips, truncation, insertion, an empty file) and structure-level
mutations made through the protobuf (dims, dtypes, attributes, deleted initializers, dangling
names, cycles, duplicate outputs, huge declared weights, NaN/Inf weights, opsets, unknown
domains, empty graphs, missing external data) are applied to the models in ../shared/models
and the ONNX conformance cases. Each mutant goes through `inspect`, `simulate` or `compile`
in a worker process that runs the CLI in-process (one import per worker, for speed) under an
address-space limit (RLIMIT_AS) and a timeout. Outcomes:

    success      exit 0 (or 1: simulate's outputs disagreed with onnxruntime, a clean verdict)
    clean error  exit 2 with exactly one line `onnx2mcu: error: ...`
    internal     the one-line bug-report message (exit 70)
    traceback    a Python traceback escaped, or an error that is not one line
    crash        the worker died (signal, abort)
    hang         no answer within the timeout
    memory       MemoryError / out-of-memory exit, or the address-space limit was hit

One reproducer per (outcome, command, error signature) is saved for every outcome but the
first two; the markdown table counts outcomes per mutation family. The same --seed gives
the same mutants in the same order.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODELS_DIR = SHARED / "models"
NODE_DIR = SHARED / "onnx-node-tests" / "node"
COMMANDS = ("inspect", "simulate", "compile")
OUTCOMES = ("success", "clean error", "internal", "traceback", "crash", "hang", "memory")
BAD = ("internal", "traceback", "crash", "hang", "memory")
DEFAULT_MEMORY_BYTES = 4 * 1024 ** 3  # beyond the worker's own address space at start
DEFAULT_TIMEOUT = 60.0

BYTE_FAMILIES = ("bit flips", "truncation", "insertion", "empty file")
STRUCT_FAMILIES = ("dims", "dtypes", "attributes", "deleted initializer", "dangling name", "cycle",
                   "duplicate output", "huge weights", "nan/inf weights", "opset", "unknown domain",
                   "empty graph", "no outputs", "external data")
FAMILIES = BYTE_FAMILIES + STRUCT_FAMILIES


# ----- seeds -------------------------------------------------------------------------
def seed_models(max_conformance: int | None = None, max_model_bytes: int | None = None,
                seed: int = 0) -> list[Path]:
    """The real models (smallest first) and a deterministic sample of conformance cases."""
    models = sorted(MODELS_DIR.rglob("*.onnx"), key=lambda p: (p.stat().st_size, str(p))) \
        if MODELS_DIR.is_dir() else []
    if max_model_bytes is not None:
        models = [m for m in models if m.stat().st_size <= max_model_bytes]
    cases = sorted(NODE_DIR.glob("*/model.onnx")) if NODE_DIR.is_dir() else []
    if max_conformance is not None and len(cases) > max_conformance:
        cases = sorted(random.Random(seed).sample(cases, max_conformance))
    return models + cases


# ----- mutations ---------------------------------------------------------------------
@dataclass
class Mutant:
    index: int
    family: str
    seed_path: Path
    data: bytes
    command: str
    extra_files: dict[str, bytes] = field(default_factory=dict)


def mutate(index: int, seeds: list[Path], rng_seed: int) -> Mutant:
    rng = random.Random(f"{rng_seed}:{index}")
    real = [p for p in seeds if NODE_DIR not in p.parents]
    cases = [p for p in seeds if NODE_DIR in p.parents]
    pool = real if real and (not cases or rng.random() < 0.5) else cases  # half on the real models
    seed_path = pool[rng.randrange(len(pool))]
    family = FAMILIES[index % len(FAMILIES)]
    command = COMMANDS[(index // len(FAMILIES)) % len(COMMANDS)]
    original = seed_path.read_bytes()
    if family in BYTE_FAMILIES:
        data = _byte_mutation(family, original, rng)
        return Mutant(index, family, seed_path, data, command)
    import onnx

    proto = onnx.load_from_string(original)
    extra: dict[str, bytes] = {}
    _struct_mutation(family, proto, rng, extra)
    return Mutant(index, family, seed_path, proto.SerializeToString(), command, extra)


def _byte_mutation(family: str, data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    if family == "empty file" or not buf:
        return b"" if rng.random() < 0.5 else bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
    if family == "bit flips":
        for _ in range(rng.choice((1, 2, 4, 16, 64))):
            pos = rng.randrange(len(buf))
            buf[pos] ^= 1 << rng.randrange(8) if rng.random() < 0.7 else rng.randrange(1, 256)
        return bytes(buf)
    if family == "truncation":
        return bytes(buf[:rng.randrange(len(buf))])
    # insertion: random bytes or a varint-looking run at a random place
    pos = rng.randrange(len(buf) + 1)
    blob = bytes(rng.randrange(256) for _ in range(rng.choice((1, 3, 8, 40))))
    if rng.random() < 0.3:
        blob = b"\xff" * rng.randrange(1, 11)
    return bytes(buf[:pos]) + blob + bytes(buf[pos:])


_HUGE = (2 ** 31, 2 ** 31 - 1, 2 ** 40, 10 ** 6, 2 ** 62)
_ODD_DIMS = (0, -1, -7, 1, 3, 1000, *_HUGE)


def _struct_mutation(family: str, proto, rng: random.Random, extra: dict[str, bytes]) -> None:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph = proto.graph
    inits = list(graph.initializer)
    nodes = list(graph.node)
    inputs = [i for i in graph.input if i.name not in {t.name for t in inits}]
    if family == "dims":
        targets = [("in", i) for i in inputs] + [("out", o) for o in graph.output] + [("init", t) for t in inits]
        if not targets:
            return
        kind, target = rng.choice(targets)
        value = rng.choice(_ODD_DIMS)
        if kind == "init":
            if target.dims:
                target.dims[rng.randrange(len(target.dims))] = max(value, 0) if value >= 0 else value
            else:
                target.dims.append(value)
        else:
            dims = target.type.tensor_type.shape.dim
            if dims:
                dim = dims[rng.randrange(len(dims))]
                dim.dim_value = value
            else:
                target.type.tensor_type.shape.dim.add().dim_value = value
    elif family == "dtypes":
        code = rng.choice((0, 7, 8, 10, 11, 13, 14, 16, 17, 21, 23, 25, 40, 999, -3))
        targets = inputs + list(graph.output)
        if inits and rng.random() < 0.5:
            inits[rng.randrange(len(inits))].data_type = code
        elif targets:
            rng.choice(targets).type.tensor_type.elem_type = code
    elif family == "attributes":
        with_attrs = [n for n in nodes if n.attribute]
        if with_attrs and rng.random() < 0.7:
            node = rng.choice(with_attrs)
            attr = rng.choice(list(node.attribute))
            value = rng.choice((0, -1, -2, 99, 2 ** 31, 7))
            if attr.type == onnx.AttributeProto.INT:
                attr.i = value
            elif attr.type == onnx.AttributeProto.INTS and attr.ints:
                attr.ints[rng.randrange(len(attr.ints))] = value
            elif attr.type == onnx.AttributeProto.FLOAT:
                attr.f = rng.choice((float("nan"), float("inf"), -1.0, 0.0, 1e30))
            else:
                node.attribute.remove(attr)
        elif nodes:
            node = rng.choice(nodes)
            name = rng.choice(("group", "axis", "strides", "kernel_shape", "perm", "axes", "pads"))
            kept = [a for a in node.attribute if a.name != name]
            del node.attribute[:]
            node.attribute.extend(kept)
            value = rng.choice((0, -1, 99, 3))
            if name in ("group", "axis"):
                node.attribute.append(onnx.helper.make_attribute(name, value))
            else:
                node.attribute.append(onnx.helper.make_attribute(name, [value] * rng.randrange(1, 4)))
    elif family == "deleted initializer":
        if inits:
            graph.initializer.remove(inits[rng.randrange(len(inits))])
    elif family == "dangling name":
        if nodes:
            node = rng.choice(nodes)
            if node.input and rng.random() < 0.7:
                node.input[rng.randrange(len(node.input))] = "dangling_" + str(rng.randrange(100))
            elif node.output:
                node.output[rng.randrange(len(node.output))] = "renamed_" + str(rng.randrange(100))
    elif family == "cycle":
        if nodes and nodes[0].input:
            last = nodes[-1]
            nodes[0].input[0] = last.output[0] if last.output else "x"
            if len(nodes) > 1 and rng.random() < 0.5:  # or swap two nodes out of order
                a, b = rng.sample(range(len(nodes)), 2)
                copy_a, copy_b = onnx.NodeProto(), onnx.NodeProto()
                copy_a.CopyFrom(nodes[a])
                copy_b.CopyFrom(nodes[b])
                graph.node[a].CopyFrom(copy_b)
                graph.node[b].CopyFrom(copy_a)
    elif family == "duplicate output":
        choice = rng.random()
        if graph.output and choice < 0.5:
            graph.output.append(graph.output[rng.randrange(len(graph.output))])
        elif inputs and choice < 0.8:
            out = onnx.ValueInfoProto()
            out.CopyFrom(inputs[0])
            graph.output.append(out)  # an output that is a graph input
        elif nodes and len(nodes) > 1:
            nodes[-1].output[0] = nodes[0].output[0] if nodes[0].output else "y"  # two writers
    elif family == "huge weights":
        if inits:
            t = inits[rng.randrange(len(inits))]
            del t.dims[:]
            t.dims.extend(rng.choice(([2 ** 20, 2 ** 20], [2 ** 31], [10 ** 6, 4, 5], [65536, 65536, 4])))
        elif inputs:
            dims = inputs[0].type.tensor_type.shape.dim
            for dim in dims:
                dim.dim_value = rng.choice((1000, 10 ** 6, 2 ** 16))
    elif family == "nan/inf weights":
        floats = [t for t in inits if t.data_type == onnx.TensorProto.FLOAT]
        if floats:
            t = rng.choice(floats)
            arr = numpy_helper.to_array(t).copy()
            if arr.size:
                flat = arr.reshape(-1)
                pick = rng.random()
                if pick < 0.3:
                    flat[:] = np.nan
                else:
                    for _ in range(max(1, flat.size // 10)):
                        flat[rng.randrange(flat.size)] = rng.choice((np.nan, np.inf, -np.inf, 3e38))
                t.CopyFrom(numpy_helper.from_array(arr, t.name))
    elif family == "opset":
        value = rng.choice((0, -1, 1, 6, 9, 12, 99, 2 ** 40, 22))
        for entry in proto.opset_import:
            if entry.domain in ("", "ai.onnx"):
                entry.version = value
        if rng.random() < 0.2:
            proto.ir_version = rng.choice((0, 1, 99))
    elif family == "unknown domain":
        if nodes:
            node = rng.choice(nodes)
            node.domain = rng.choice(("com.example", "ai.onnx.ml", "com.microsoft", "x" * 300))
            if rng.random() < 0.5:
                proto.opset_import.add(domain=node.domain, version=1)
    elif family == "empty graph":
        choice = rng.random()
        del graph.node[:]
        if choice < 0.5:
            del graph.initializer[:]
        if choice < 0.25:
            del graph.input[:]
            del graph.output[:]
    elif family == "no outputs":
        del graph.output[:]
    elif family == "external data":
        if inits:
            t = inits[rng.randrange(len(inits))]
            raw = numpy_helper.to_array(t).tobytes()
            t.ClearField("raw_data")
            for field_name in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
                t.ClearField(field_name)
            t.data_location = onnx.TensorProto.EXTERNAL
            del t.external_data[:]
            location = rng.choice(("weights.bin", "missing.bin", "../outside.bin", "/etc/passwd"))
            entry = t.external_data.add()
            entry.key, entry.value = "location", location
            if rng.random() < 0.5:
                entry = t.external_data.add()
                entry.key, entry.value = "length", str(rng.choice((len(raw), len(raw) + 7, 2 ** 40)))
            if location == "weights.bin" and rng.random() < 0.6:
                extra["weights.bin"] = raw[: rng.randrange(len(raw) + 1)] if rng.random() < 0.5 else raw


# ----- the worker --------------------------------------------------------------------
def worker_main(memory_bytes: int) -> None:
    """Read one JSON task a line on stdin, run the CLI in-process, answer one JSON line."""
    import resource

    vm = _vm_size()
    limit = vm + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from onnx2mcu import cli

    out = sys.stdout
    sys.stdout = io.StringIO()
    for line in sys.stdin:
        task = json.loads(line)
        stdout, stderr = io.StringIO(), io.StringIO()
        code: int | str
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = cli.main(task["argv"])
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else 2
            except MemoryError:
                code = "memory"
            except BaseException:  # noqa: BLE001 - what escaped main is a traceback
                import traceback

                traceback.print_exc(file=stderr)
                code = "traceback"
        out.write(json.dumps({"code": code, "stderr": stderr.getvalue()[-4000:]}) + "\n")
        out.flush()


def _vm_size() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2 * 1024 ** 3


class Worker:
    """One worker process; restarted after a crash or a hang."""

    def __init__(self, memory_bytes: int):
        self.memory_bytes = memory_bytes
        self.proc: subprocess.Popen | None = None

    def _start(self) -> None:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", "--memory", str(self.memory_bytes)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env, cwd=str(ROOT), start_new_session=True)

    def run(self, argv: list[str], timeout: float) -> tuple[str, str, int | str | None]:
        """(outcome, stderr, exit code)."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc and self.proc.stdin and self.proc.stdout
        try:
            self.proc.stdin.write(json.dumps({"argv": argv}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return self._died("")
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.stop()
            return "hang", f"no answer in {timeout:.0f} s", None
        line = self.proc.stdout.readline()
        if not line:
            return self._died("")
        answer = json.loads(line)
        return classify(answer["code"], answer["stderr"]), answer["stderr"], answer["code"]

    def _died(self, stderr: str) -> tuple[str, str, int | None]:
        code = self.proc.wait() if self.proc else None
        self.proc = None
        if code is not None and code < 0 and -code == signal.SIGKILL:
            return "memory", f"killed (signal {-code})", code
        return "crash", f"worker died with {code}", code

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


def classify(code: int | str, stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if code == "memory" or code == 3 or "MemoryError" in stderr or "bad_alloc" in stderr:
        return "memory"
    if code == "traceback" or "Traceback (most recent call last)" in stderr:
        return "traceback"
    if code == 70:
        return "internal"
    if code in (0, 1):
        return "success"
    if code == 2 and lines and all(ln.startswith(("onnx2mcu: error: ", "  ")) for ln in lines) \
            and lines[0].startswith("onnx2mcu: error: ") and sum(ln.startswith("onnx2mcu") for ln in lines) == 1:
        return "clean error"
    return "traceback"


def signature(outcome: str, command: str, stderr: str) -> str:
    """Outcome, command and the error's last line with numbers and paths blanked."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    last = re.sub(r"/\S+", "<path>", last)
    last = re.sub(r"\d+", "N", last)[:160]
    return f"{outcome}|{command}|{last}"


# ----- the driver --------------------------------------------------------------------
@dataclass
class Result:
    mutant: Mutant
    outcome: str
    stderr: str
    code: int | str | None
    seconds: float


def run_mutants(count: int, seed: int = 0, jobs: int = 2, timeout: float = DEFAULT_TIMEOUT,
                memory_bytes: int = DEFAULT_MEMORY_BYTES, seeds: list[Path] | None = None,
                reproducers: Path | None = None, progress: bool = False) -> list[Result]:
    seeds = seeds if seeds is not None else seed_models()
    if not seeds:
        raise SystemExit(f"no seed models under {SHARED}")
    workdir = Path(tempfile.mkdtemp(prefix="fuzz-work-"))
    workers = [Worker(memory_bytes) for _ in range(max(1, jobs))]
    results: list[Result | None] = [None] * count

    def one(index: int, worker: Worker) -> None:
        mutant = mutate(index, seeds, seed)
        folder = workdir / f"m{index}"
        folder.mkdir()
        path = folder / "model.onnx"
        path.write_bytes(mutant.data)
        for name, data in mutant.extra_files.items():
            (folder / name).write_bytes(data)
        argv = [mutant.command, str(path)]
        if mutant.command == "simulate":
            argv += ["--time-limit", "5", "--json"]
        elif mutant.command == "compile":
            argv += ["-o", str(folder / "out"), "--time-limit", "5", "--json"]
        start = time.monotonic()
        outcome, stderr, code = worker.run(argv, timeout)
        results[index] = Result(mutant, outcome, stderr, code, time.monotonic() - start)
        shutil.rmtree(folder, ignore_errors=True)

    def lane(lane_index: int) -> None:
        worker = workers[lane_index]
        try:
            for index in range(lane_index, count, len(workers)):
                one(index, worker)
                if progress and index % 100 == 0:
                    print(f"  {index}/{count}", file=sys.stderr, flush=True)
        finally:
            worker.stop()

    try:
        with ThreadPoolExecutor(len(workers)) as pool:
            list(pool.map(lane, range(len(workers))))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    done = [r for r in results if r is not None]
    if reproducers is not None:
        save_reproducers(done, reproducers)
    return done


def save_reproducers(results: list[Result], folder: Path) -> list[Path]:
    saved: dict[str, Path] = {}
    for r in results:
        if r.outcome not in BAD:
            continue
        sig = signature(r.outcome, r.mutant.command, r.stderr)
        if sig in saved:
            continue
        key = hashlib.sha256(sig.encode()).hexdigest()[:10]
        target = folder / f"{r.outcome.replace(' ', '_')}-{r.mutant.command}-{key}"
        target.mkdir(parents=True, exist_ok=True)
        (target / "model.onnx").write_bytes(r.mutant.data)
        for name, data in r.mutant.extra_files.items():
            (target / name).write_bytes(data)
        (target / "README.txt").write_text(
            f"onnx2mcu {r.mutant.command} model.onnx\noutcome {r.outcome} (exit {r.code})\n"
            f"family {r.mutant.family}, seed model {r.mutant.seed_path}, mutant {r.mutant.index}\n\n"
            f"{r.stderr}\n")
        saved[sig] = target
    return list(saved.values())


def table(results: list[Result]) -> str:
    lines = ["| family | mutants | " + " | ".join(OUTCOMES) + " |",
             "|---|---:|" + "---:|" * len(OUTCOMES)]
    totals = {o: 0 for o in OUTCOMES}
    for family in FAMILIES:
        rows = [r for r in results if r.mutant.family == family]
        if not rows:
            continue
        counts = {o: sum(r.outcome == o for r in rows) for o in OUTCOMES}
        for o in OUTCOMES:
            totals[o] += counts[o]
        lines.append(f"| {family} | {len(rows)} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
    lines.append(f"| **all** | {len(results)} | " + " | ".join(f"**{totals[o]}**" for o in OUTCOMES) + " |")
    by_command = []
    for command in COMMANDS:
        rows = [r for r in results if r.mutant.command == command]
        bad = sum(r.outcome in BAD for r in rows)
        by_command.append(f"{command} {len(rows)} ({bad} bad)")
    lines.append("")
    lines.append("by command: " + ", ".join(by_command))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("--memory", type=int, default=DEFAULT_MEMORY_BYTES,
                        help="address space a worker may add beyond its start (RLIMIT_AS), bytes")
    parser.add_argument("--conformance", type=int, default=200, help="conformance cases among the seeds")
    parser.add_argument("--reproducers", default="fuzz-reproducers", help="folder for one mutant per signature")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.memory)
        return 0
    start = time.monotonic()
    seeds = seed_models(args.conformance, seed=args.seed)
    results = run_mutants(args.mutants, args.seed, args.jobs, args.timeout, args.memory, seeds,
                          Path(args.reproducers), progress=True)
    text = table(results)
    elapsed = time.monotonic() - start
    bad = [r for r in results if r.outcome in BAD]
    summary = (f"{len(results)} mutants of {len(seeds)} seed models (seed {args.seed}) in {elapsed:.0f} s; "
               f"{len(bad)} bad outcome(s)" + (f", reproducers in {args.reproducers}/" if bad else ""))
    print(text)
    print()
    print(summary)
    if args.markdown:
        Path(args.markdown).write_text(
            "# Fuzzing the front door\n\n`python benchmarks/fuzz.py --mutants "
            f"{args.mutants} --seed {args.seed}` ({summary}).\n\n{text}\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
