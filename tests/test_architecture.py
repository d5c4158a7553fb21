"""The pipeline's structure, checked (docs/ARCHITECTURE.md, "Stages and imports").

A stage imports only the core and the stages to its left:
frontend -> graph_opt -> scheduler -> codegen, with the simulator beside codegen.
The core (onnx2mcu/ except the face modules) imports no stage, and no module
imports another in a cycle. Imports inside functions count the same as those
at the top: deferring an import hides a dependency, it does not remove it.
Imports under `if TYPE_CHECKING:` name types for annotations only and are left out.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "onnx2mcu"
# folder -> package, as pyproject.toml maps them
STAGE_DIRS = {"frontend": "frontend", "graph_opt": "graph_opt", "scheduler": "scheduler",
              "codegen": "codegen", "simulator": "simulator"}
# rank of each stage: a stage may import stages of a lower rank only
RANK = {"frontend": 0, "graph_opt": 1, "scheduler": 2, "codegen": 3, "simulator": 3}
# the face: the command line, the Python API and the drivers that run the whole pipeline
FACE = {"cli", "api", "build", "project", "runner", "pipeline", "report", "flash", "board_check",
        "__init__", "__main__"}


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found: dict[str, Path] = {}
    for folder in [PACKAGE, *STAGE_DIRS]:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [PACKAGE] if folder == PACKAGE else [PACKAGE, STAGE_DIRS[folder]]
            parts += [p for p in rel.parts if p != "__init__"]
            found[".".join(parts)] = path
    return found


def imports_of(path: Path, module: str, is_package: bool, modules: set[str] | None = None) -> set[str]:
    """Every onnx2mcu module this file imports, wherever the import statement is.

    `from pkg import name` depends on `pkg.name` when that is a module, else on `pkg`."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` imports are for annotations only
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            node.body = []
    base = module.split(".") if is_package else module.split(".")[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = base[: len(base) - node.level + 1]
                target = ".".join(prefix + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                names.add(sub if modules is None or sub in modules else target)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def place(module: str) -> str:
    """'face', 'core' or the stage a module belongs to."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in RANK:
        return parts[1]
    if len(parts) == 2 and parts[1] in FACE or module == PACKAGE:
        return "face"
    return "core"


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    graph = {}
    for module, path in files.items():
        targets = imports_of(path, module, path.name == "__init__.py", set(files))
        graph[module] = {t for t in targets if t in files and t != module}
    return graph


def test_every_stage_is_found():
    places = {place(m) for m in module_files()}
    assert set(RANK) | {"core", "face"} <= places


def test_no_stage_imports_to_its_right_and_the_core_imports_no_stage():
    wrong = []
    for module, targets in import_graph().items():
        source = place(module)
        for target in sorted(targets):
            dest = place(target)
            if source == "face" or dest == "core" or dest == source and source != "face":
                continue
            if dest == "face":
                wrong.append(f"{module} imports the face module {target}")
            elif source == "core":
                wrong.append(f"core module {module} imports stage module {target}")
            elif RANK[dest] >= RANK[source]:
                wrong.append(f"{module} ({source}) imports {target} ({dest}), not to its left")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)


def test_a_violation_is_caught(tmp_path):
    """The checker itself: a core module importing a stage is reported."""
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from onnx2mcu.codegen.context import CContext\n")
    targets = imports_of(path, "onnx2mcu.ops.bad", False, {"onnx2mcu.codegen.context"})
    assert "onnx2mcu.codegen.context" in targets
    assert place("onnx2mcu.ops.bad") == "core" and place("onnx2mcu.codegen.context") == "codegen"
