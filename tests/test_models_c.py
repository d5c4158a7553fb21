"""Real models through generated C: host and QEMU (mps2-an386) agree with onnxruntime,
board projects link, and models too big for a board are refused.

The float models come from ../shared/models (DESIGN §9); BERT-tiny is
exported from transformers.  A table of errors, instruction counts, ELF sizes and
compile times is printed after the module's tests.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from onnx2mcu import cli
from onnx2mcu.build import compile_model
from onnx2mcu.errors import UserError
from onnx2mcu.runner import run_project_dir
from onnx2mcu.simulator.run_c import build
from figures import print_table  # noqa: E402  (tests/figures.py)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS = {
    "ad01_fp32": "models/mlperf_tiny/ad01_fp32.onnx",
    "kws_ref_model_float32": "models/mlperf_tiny/kws_ref_model_float32.onnx",
    "pretrainedResnet": "models/mlperf_tiny/pretrainedResnet.onnx",
    "vww_96_float": "models/mlperf_tiny/vww_96_float.onnx",
    "mcunet_vww_deq": "models/mcunet/mcunet_vww_deq.onnx",
}
MLPERF_FLOAT = ["ad01_fp32", "kws_ref_model_float32", "pretrainedResnet", "vww_96_float"]
QEMU_BOARD = "mps2-an386"
MAX_REL_ERR = 1e-4

HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
HAVE_ARM = shutil.which("arm-none-eabi-gcc") is not None
HAVE_QEMU = HAVE_ARM and shutil.which("qemu-system-arm") is not None

needs_host = pytest.mark.skipif(not HAVE_HOST, reason="gcc / make not installed")
needs_arm = pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc not installed "
                               "(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")
needs_qemu = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-arm or arm-none-eabi-gcc not "
                                "installed (apt-get install qemu-system-arm gcc-arm-none-eabi)")


def model_path(name: str) -> Path:
    path = SHARED / MODELS[name]
    if not path.is_file():
        pytest.skip(f"{path} not found (the shared models folder is absent)")
    return path


def bert_tiny(**config) -> onnx.ModelProto:
    try:
        from onnx2mcu.examples import build_bert_tiny
    except ImportError as exc:  # pragma: no cover - the example is being written elsewhere
        pytest.skip(f"bert-tiny example not available: {exc}")
    return build_bert_tiny(**config)


class Projects:
    """Compiled projects, one per (model, board), built on first use; a results table."""

    def __init__(self, root: Path):
        self.root = root
        self.dirs: dict[tuple[str, str], Path] = {}
        self.rows: dict[str, dict] = {}

    def get(self, name: str, board: str, model=None) -> Path:
        key = (name, board)
        if key not in self.dirs:
            source = model if model is not None else str(model_path(name))
            start = time.perf_counter()
            result = compile_model(source, self.root / f"{name}-{board}", board=board)
            seconds = time.perf_counter() - start
            self.dirs[key] = result.out_dir
            self.row(name)[f"compile_s[{board}]"] = round(seconds, 2)
        return self.dirs[key]

    def row(self, name: str) -> dict:
        return self.rows.setdefault(name, {})


@pytest.fixture(scope="module")
def projects(request, tmp_path_factory):
    store = Projects(tmp_path_factory.mktemp("models_c"))
    yield store
    columns = ["host_rel_err", "qemu_rel_err", "qemu_instructions", "flash_bytes", "ram_bytes"]
    columns += sorted({k for row in store.rows.values() for k in row if k.startswith("compile_s")})
    print_table(request, store.rows, columns)


# ----- host and QEMU agree with onnxruntime ------------------------------------------
@needs_host
@pytest.mark.parametrize("name", list(MODELS))
def test_model_on_host(projects, name):
    project = projects.get(name, QEMU_BOARD)
    data = run_project_dir(str(project), "host")
    projects.row(name)["host_rel_err"] = data["max_scaled_err"]
    assert data["max_scaled_err"] <= MAX_REL_ERR


@needs_qemu
@pytest.mark.parametrize("name", list(MODELS))
def test_model_under_qemu(projects, name):
    project = projects.get(name, QEMU_BOARD)
    data = run_project_dir(str(project), "qemu")
    row = projects.row(name)
    row.update(qemu_rel_err=data["max_scaled_err"], qemu_instructions=data["instructions"],
               flash_bytes=data["flash_bytes"], ram_bytes=data["ram_bytes"])
    assert data["max_scaled_err"] <= MAX_REL_ERR
    assert data["instructions"] > 0
    report = json.loads((project / "report.json").read_text())
    assert report["flash_bytes"] == data["flash_bytes"]
    # the arena is in .bss: RAM holds at least the planned arena
    assert data["ram_bytes"] >= report["arena_bytes"]


@needs_qemu
def test_bert_tiny_from_transformers_on_host_and_qemu(projects, tmp_path_factory):
    """BertModel (L=2, H=128, A=2, I=512, full 30522 vocabulary) exported by torch.onnx, seq 128.

    Its 17.4 MB of weights exceed the emulated board's 4 MiB flash: the word-embedding
    table goes to the board's external memory region (PSRAM) and the rest stays in flash."""
    pytest.importorskip("torch", reason="torch (the `export` extra) is needed to export BERT")
    pytest.importorskip("transformers", reason="transformers (the `export` extra) is needed")
    from helpers_export import INPUT_SHAPES, export_bert

    path = export_bert(tmp_path_factory.mktemp("bert") / "bert_tiny.onnx", dynamo=False)
    name = "bert-tiny (transformers, seq 128)"
    start = time.perf_counter()
    result = compile_model(str(path), projects.root / "bert-qemu", board=QEMU_BOARD,
                           input_shapes=INPUT_SHAPES)
    row = projects.row(name)
    row[f"compile_s[{QEMU_BOARD}]"] = round(time.perf_counter() - start, 2)
    assert result.report["external_weights_bytes"] >= 30522 * 128 * 4
    host = run_project_dir(str(result.out_dir), "host")
    row["host_rel_err"] = host["max_scaled_err"]
    data = run_project_dir(str(result.out_dir), "qemu")
    row.update(qemu_rel_err=data["max_scaled_err"], qemu_instructions=data["instructions"],
               flash_bytes=data["flash_bytes"], ram_bytes=data["ram_bytes"])
    assert host["max_scaled_err"] <= MAX_REL_ERR
    assert data["max_scaled_err"] <= MAX_REL_ERR
    assert data["ram_bytes"] >= result.report["arena_bytes"]


# ----- a real board links ----------------------------------------------------------
# ad01_fp32's weights alone (1,063,456 B) exceed the F746ZG's 1 MiB of flash
FITS_F746 = [name for name in MLPERF_FLOAT if name != "ad01_fp32"]


@needs_arm
@pytest.mark.parametrize("name", FITS_F746)
def test_mlperf_tiny_links_for_nucleo_f746zg(projects, name):
    project = projects.get(name, "nucleo-f746zg")
    elf = build(project, "nucleo-f746zg")
    assert elf.is_file() and elf.stat().st_size > 0


@needs_arm
def test_ad01_flash_overflow_on_nucleo_f746zg(tmp_path, capsys):
    """Refused at compile (flash), and when forced the link names the FLASH overflow."""
    model, out = str(model_path("ad01_fp32")), tmp_path / "ad01"
    assert cli.main(["compile", model, "-o", str(out), "--board", "nucleo-f746zg"]) == 2
    err = capsys.readouterr().err
    assert "does not fit nucleo-f746zg" in err and "flash" in err
    assert cli.main(["compile", model, "-o", str(out), "--board", "nucleo-f746zg", "--force"]) == 0
    with pytest.raises(UserError, match="FLASH overflow"):
        build(out, "nucleo-f746zg")


# ----- too big for a board ---------------------------------------------------------
def _big_activation_model(path: Path) -> Path:
    """1 MiB of activations (two 512 KiB tensors live at once), no weights."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 64, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 64, 64])
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Sigmoid", ["r"], ["s"]),
             helper.make_node("Add", ["r", "s"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "big_activations", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def test_too_big_for_the_board_fails_at_compile(tmp_path, capsys):
    model = _big_activation_model(tmp_path / "big.onnx")
    out = tmp_path / "out"
    assert cli.main(["compile", str(model), "-o", str(out), "--board", "rp2040"]) == 2
    err = capsys.readouterr().err
    assert "does not fit rp2040" in err and "RAM" in err and "--force" in err
    assert "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["big.onnx"]  # no half-written folder


@needs_arm
def test_forced_compile_fails_at_link_naming_ram(tmp_path, capsys):
    model = _big_activation_model(tmp_path / "big.onnx")
    out = tmp_path / "out"
    assert cli.main(["compile", str(model), "-o", str(out), "--board", "rp2040", "--force"]) == 0
    with pytest.raises(UserError, match="RAM overflow"):
        build(out, "rp2040")


def test_bert_tiny_too_big_for_nrf52840(tmp_path, capsys):
    out = tmp_path / "bert"
    assert cli.main(["compile", "--example", "bert-tiny", "-o", str(out),
                     "--board", "nrf52840dk"]) == 2
    err = capsys.readouterr().err
    assert "does not fit nrf52840dk" in err and "flash" in err
    assert not out.exists()


# ----- `onnx2mcu check --json` --------------------------------------------------------
@needs_qemu
def test_check_json(tmp_path, capsys):
    model = model_path("ad01_fp32")
    code = cli.main(["check", str(model), "--board", QEMU_BOARD, "--json", "-o",
                     str(tmp_path / "check")])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert data["simulate"]["peak_bytes"] > 0
    assert data["host"]["max_scaled_err"] <= MAX_REL_ERR
    assert data["qemu"]["max_scaled_err"] <= MAX_REL_ERR
    assert data["qemu"]["instructions"] > 0
    assert data["elf"]["flash_bytes"] > 1_000_000  # ad01 has ~1 MB of weights
    assert data["elf"]["ram_bytes"] > 0
