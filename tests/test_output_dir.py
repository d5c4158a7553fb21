"""`compile -o DIR` never loses a user's file (codegen/output_dir.py): manifest, refusal, --force, umask."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from onnx2mcu.cli import main
from onnx2mcu.codegen.output_dir import MANIFEST


def _model(op_type: str = "Relu") -> onnx.ModelProto:
    graph = h.make_graph([h.make_node(op_type, ["x"], ["y"], name="n0")], "one",
                         [h.make_tensor_value_info("x", T.FLOAT, [2, 4])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 4])])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@pytest.fixture
def model_file(tmp_path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "relu.onnx"
    onnx.save(_model(), str(path))
    (folder / "notes.txt").write_text("mine")
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _compile(model: Path | str, out: Path | str, *extra: str) -> int:
    return main(["compile", str(model), "-o", str(out), *extra])


def test_new_folder_gets_a_manifest_of_exactly_its_files(tmp_path, model_file):
    out = tmp_path / "out"
    assert _compile(model_file, out) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {MANIFEST}
    assert set(manifest["files"]) == files
    assert {"model.c", "model.h", "Makefile", "source.onnx"} <= files
    assert not [p for p in out.iterdir() if p.name.startswith(".onnx2mcu-staging")]


def test_non_empty_folder_without_manifest_is_refused(tmp_path, model_file, capsys):
    src = tmp_path / "proj" / "src"
    src.mkdir(parents=True)
    (src / "app.c").write_text("int app(void) { return 1; }\n")
    (src / "README.txt").write_text("my project\n")
    before = _snapshot(src)
    assert _compile(model_file, src) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("onnx2mcu: error: ")
    assert "not empty" in err[0] and "--force" in err[0] and "app.c" in err[0]
    assert _snapshot(src) == before
    assert sorted(p.name for p in src.iterdir()) == ["README.txt", "app.c"]


def test_force_adds_beside_the_users_files_and_recompile_keeps_them(tmp_path, model_file):
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.c").write_text("int app(void) { return 1; }\n")
    (src / "README.txt").write_text("my project\n")
    assert _compile(model_file, src, "--force") == 0
    assert (src / "app.c").read_text() == "int app(void) { return 1; }\n"
    assert (src / "README.txt").read_text() == "my project\n"
    assert (src / "model.c").exists()
    # now the folder has our manifest: a recompile (another op) needs no --force, keeps the
    # user's files, replaces ours and drops our kernel that the new model no longer uses
    onnx.save(_model("Tanh"), str(model_file))
    relu_kernels = {k for k in json.loads((src / MANIFEST).read_text())["files"] if "relu" in k}
    assert _compile(model_file, src) == 0
    assert (src / "app.c").exists() and (src / "README.txt").exists()
    assert "o2m_tanh_f32" in (src / "model.c").read_text()
    files = json.loads((src / MANIFEST).read_text())["files"]
    assert "app.c" not in files and "README.txt" not in files
    for name in relu_kernels - set(files):
        assert not (src / name).exists()


def test_force_never_overwrites_a_users_file_of_the_same_name(tmp_path, model_file, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.c").write_text("/* the user's firmware */\n")
    (src / "Makefile").write_text("all:\n")
    before = _snapshot(src)
    assert _compile(model_file, src, "--force") == 2
    err = capsys.readouterr().err
    assert "would overwrite" in err and "main.c" in err and "Makefile" in err
    assert _snapshot(src) == before


def test_output_dot_with_the_model_in_it(tmp_path, model_file, monkeypatch, capsys):
    monkeypatch.chdir(model_file.parent)
    before = _snapshot(model_file.parent)
    assert _compile("relu.onnx", ".") == 2
    assert "not empty" in capsys.readouterr().err
    assert _snapshot(model_file.parent) == before
    assert _compile("relu.onnx", ".", "--force") == 0
    after = _snapshot(model_file.parent)
    assert after["relu.onnx"] == before["relu.onnx"] and after["notes.txt"] == b"mine"
    assert "model.c" in after
    assert _compile("relu.onnx", ".") == 0  # ours now: recompiling in place is fine
    assert _snapshot(model_file.parent)["relu.onnx"] == before["relu.onnx"]
    assert os.getcwd() == str(model_file.parent)


def test_output_at_the_models_own_folder(tmp_path, model_file, capsys):
    folder = model_file.parent
    (folder / "other.onnx").write_bytes(b"neighbour")
    before = _snapshot(folder)
    assert _compile(model_file, folder) == 2
    assert "relu.onnx" in capsys.readouterr().err
    assert _snapshot(folder) == before
    assert _compile(model_file, folder, "--force") == 0
    after = _snapshot(folder)
    assert all(after[k] == v for k, v in before.items())


def test_empty_existing_folder_is_filled(tmp_path, model_file):
    out = tmp_path / "empty"
    out.mkdir()
    assert _compile(model_file, out) == 0
    assert (out / "model.c").exists() and (out / MANIFEST).exists()


def test_a_file_as_output_is_refused(tmp_path, model_file, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert _compile(model_file, target) == 2
    assert "not a folder" in capsys.readouterr().err
    assert target.read_text() == "x"


def test_output_gets_the_users_permissions(tmp_path, model_file):
    old = os.umask(0o022)
    try:
        out = tmp_path / "deep" / "out"
        assert _compile(model_file, out) == 0
        plot = tmp_path / "plot.png"
        assert main(["simulate", str(model_file), "--no-check", "--plot", str(plot)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "model.c").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / MANIFEST).stat().st_mode) == 0o644
    assert stat.S_IMODE(plot.stat().st_mode) == 0o644
