"""The Python API and the CLI are one pipeline (onnx2mcu/pipeline.py).

* Every option of `simulate`, `compile` and `check` is a field of `pipeline.Options`, with
  the CLI's default.
* `onnx2mcu.simulate(...)` with options gives the CLI's numbers, and `onnx2mcu.compile(...)`
  writes the CLI's files, byte for byte.
* No stage imports the CLI; the core (memory model, budget, file helpers) imports no stage.
"""
from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import onnx
import pytest

import onnx2mcu
from onnx2mcu.cli import build_parser, main
from onnx2mcu.examples import build_bert_tiny, build_example
from onnx2mcu.pipeline import Options, run

pytestmark = [pytest.mark.unit]
ROOT = Path(__file__).resolve().parents[1]
NOT_PIPELINE = {"help", "model", "example", "json", "timeout", "profile", "func", "command", "dir", "host", "qemu",
                "version", "debug", "verbose"}
# --board-file FILE: Options(board=onnx2mcu.board_file.load_board_file(FILE))
RENAMED = {"input_shape": "input_shapes", "input_value": "input_values", "no_check": "check_onnxruntime",
           "atol": "tolerance", "rtol": "tolerance", "int8_tolerance": "tolerance", "board_file": "board"}


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


@pytest.mark.parametrize("command", ["simulate", "compile", "check"])
def test_every_cli_option_is_an_option_field_with_the_same_default(command):
    fields = {f.name: f for f in dataclasses.fields(Options)}
    for action in _subparsers()[command]._actions:
        if action.dest in NOT_PIPELINE:
            continue
        name = RENAMED.get(action.dest, action.dest)
        assert name in fields, f"--{action.dest} of `{command}` is not a pipeline.Options field"
        if action.dest in RENAMED or action.default is None or action.default is False:
            continue
        if name == "output":
            continue
        assert fields[name].default == action.default, name


@pytest.fixture(scope="module")
def bert_path(tmp_path_factory):
    """A small BERT (attention and FFN get tiled) as a file."""
    path = tmp_path_factory.mktemp("api") / "bert.onnx"
    onnx.save(build_bert_tiny(hidden=32, heads=2, ffn=128, layers=1, seq=32, vocab=100, max_positions=32),
              path)
    return str(path)


def _cli_json(argv, capsys) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


SAME = ("peak_bytes", "arena_bytes", "peak_step", "peak_node", "schedule", "tensors", "live_bytes",
        "max_abs_err", "max_rel_err", "weights_bytes", "ops")


def test_simulate_options_equal_the_cli(bert_path, capsys):
    untiled = onnx2mcu.simulate(bert_path, scheduler="greedy", tile="none", seed=3, time_limit=20)
    cli = _cli_json(["simulate", bert_path, "--scheduler", "greedy", "--tile", "none", "--seed", "3",
                     "--time-limit", "20", "--json"], capsys)
    api = untiled.to_dict()
    assert "tiling" not in cli
    assert {k: api[k] for k in SAME} == {k: cli[k] for k in SAME}
    assert api["scheduler"]["method"] == cli["scheduler"]["method"] == "greedy"
    # a RAM budget between the floor and the untiled peak: tiles are sized from it
    budget = untiled.peak_bytes // 2
    result = onnx2mcu.run(bert_path, simulate=True, scheduler="greedy", ram_budget=budget, seed=3,
                          time_limit=20)
    cli = _cli_json(["simulate", bert_path, "--scheduler", "greedy", "--ram-budget", str(budget),
                     "--seed", "3", "--time-limit", "20", "--json"], capsys)
    assert result.optimization["tiling"] == cli["tiling"]
    assert cli["tiling"]["budget_bytes"] == budget and cli["tiling"]["target_from"] == "ram-budget"
    api = result.simulation.to_dict()
    assert {k: api[k] for k in SAME} == {k: cli[k] for k in SAME}
    assert api["peak_bytes"] < untiled.peak_bytes


def test_input_shapes_and_inputs_options(tmp_path, capsys):
    import numpy as np

    model = build_example("dscnn")
    path = tmp_path / "dscnn.onnx"
    onnx.save(model, path)
    name = model.graph.input[0].name
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    values = {name: np.random.default_rng(5).standard_normal(shape).astype(np.float32)}
    np.savez(tmp_path / "in.npz", **values)
    shape_arg = f"{name}={','.join(map(str, shape))}"
    cli = _cli_json(["simulate", str(path), "--input-shape", shape_arg, "--inputs", str(tmp_path / "in.npz"),
                     "--scheduler", "file-order", "--json"], capsys)
    from_file = onnx2mcu.simulate(str(path), input_shapes={name: shape}, inputs=tmp_path / "in.npz",
                                  scheduler="file-order").to_dict()
    from_arrays = onnx2mcu.simulate(str(path), inputs=values, scheduler="file-order").to_dict()
    assert from_file["max_abs_err"] == from_arrays["max_abs_err"] == cli["max_abs_err"]
    assert from_file["inputs"] == cli["inputs"] == {name: shape}


def test_compile_writes_the_cli_files(bert_path, tmp_path, capsys):
    options = dict(board="mps2-an386", scheduler="greedy", time_limit=20, prefix="net", seed=1)
    result = onnx2mcu.compile(bert_path, tmp_path / "api", **options)
    assert main(["compile", bert_path, "-o", str(tmp_path / "cli"), "--board", "mps2-an386", "--scheduler",
                 "greedy", "--time-limit", "20", "--prefix", "net", "--seed", "1"]) == 0
    api_files = {p.relative_to(tmp_path / "api"): p.read_bytes() for p in (tmp_path / "api").rglob("*")
                 if p.is_file()}
    cli_files = {p.relative_to(tmp_path / "cli"): p.read_bytes() for p in (tmp_path / "cli").rglob("*")
                 if p.is_file()}
    assert sorted(api_files) == sorted(cli_files) and Path("net.c") in api_files
    assert api_files == cli_files
    report = json.loads(api_files[Path("report.json")])
    # the board's RAM less stack and heap sized the tiles, as on the command line
    assert report["tiling"]["budget_bytes"] == result.report["budget"]["ram_bytes"] - \
        result.report["budget"]["stack_bytes"] - result.report["budget"]["heap_bytes"]


def test_stop_after_and_bad_options(bert_path):
    loaded = run(bert_path, Options(stop_after="load"))
    assert loaded.schedule is None and loaded.optimization == {}
    assert not any(n.op_type == "TiledAttention" for n in loaded.graph.nodes)
    optimized = run(bert_path, Options(stop_after="optimize"))
    assert any(n.op_type == "TiledAttention" for n in optimized.graph.nodes) and optimized.schedule is None
    with pytest.raises(onnx2mcu.errors.UserError, match="stop_after"):
        run(bert_path, Options(stop_after="codegen"))
    with pytest.raises(TypeError):
        onnx2mcu.simulate(bert_path, schedular="greedy")  # a misspelt option is not ignored


# ----- layering -------------------------------------------------------------------------------
STAGES = ("frontend", "graph_opt", "scheduler", "codegen", "simulator", "runtime_c")
CORE = ("ir.py", "memory.py", "budget.py", "fileio.py", "targets.py", "errors.py")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_no_stage_imports_the_cli_and_the_core_no_stage():
    for stage in STAGES:
        for path in (ROOT / stage).rglob("*.py"):
            bad = {m for m in _imports(path) if m in ("onnx2mcu.cli", "onnx2mcu.api", "onnx2mcu.pipeline")}
            assert not bad, f"{path.relative_to(ROOT)} imports the face: {bad}"
    for name in CORE:
        bad = {m for m in _imports(ROOT / "onnx2mcu" / name)
               if any(m.startswith(f"onnx2mcu.{stage}") for stage in STAGES)}
        assert not bad, f"onnx2mcu/{name} imports a stage: {bad}"
