"""Recurrent models as PyTorch users write them, exported with both torch.onnx exporters
(TorchScript, dynamo=False, and torch.export, dynamo=True), against onnxruntime: in the
simulator, through generated C on the host and under QEMU (mps2-an386).

  kws_gru    keyword spotting on 49x10 MFCC: 2-layer GRU(64) -> last step -> Linear(12)
  kws_lstm   keyword spotting on 49x10 MFCC: LSTM(64) -> final h -> Linear(12)
  tagger     sequence tagger: Embedding(200, 32) -> bidirectional LSTM(32) -> Linear(9) -> LogSoftmax
  crnn       conv front end (Conv 3x3, BatchNorm, ReLU, MaxPool) on 49x10 -> LSTM(32) -> mean -> Linear(12)
  cells      nn.LSTMCell -> nn.GRUCell (the exporters decompose cells into Gemm and gates)

Weights are PyTorch's default initialisation under a fixed seed.  A table of the
figures (max_rel_err, peak, QEMU instructions) is printed after the module's tests.
"""
from __future__ import annotations

import contextlib
import io
import shutil
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch (the `export` extra) is needed to export the models")
pytest.importorskip("onnxruntime")

from onnx2mcu import simulate  # noqa: E402
from onnx2mcu.build import compile_model  # noqa: E402
from onnx2mcu.runner import run_project_dir  # noqa: E402
from figures import print_table  # noqa: E402  (tests/figures.py)

nn = torch.nn
pytestmark = [pytest.mark.c, pytest.mark.slow]

QEMU_BOARD = "mps2-an386"
MAX_REL_ERR = 1e-4
HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
HAVE_QEMU = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None
needs_host = pytest.mark.skipif(not HAVE_HOST, reason="gcc / make not installed")
needs_qemu = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-arm or arm-none-eabi-gcc not installed "
                                "(apt-get install qemu-system-arm gcc-arm-none-eabi)")


class KwsGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(10, 64, num_layers=2, batch_first=True)
        self.fc = nn.Linear(64, 12)

    def forward(self, mfcc):
        y, _ = self.rnn(mfcc)
        return self.fc(y[:, -1])


class KwsLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(10, 64, batch_first=True)
        self.fc = nn.Linear(64, 12)

    def forward(self, mfcc):
        _, (h, _) = self.rnn(mfcc)
        return self.fc(h[-1])


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(200, 32)
        self.rnn = nn.LSTM(32, 32, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(64, 9)

    def forward(self, ids):
        y, _ = self.rnn(self.emb(ids))
        return torch.log_softmax(self.fc(y), -1)


class CRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.MaxPool2d((1, 2)))
        self.rnn = nn.LSTM(8 * 5, 32, batch_first=True)
        self.fc = nn.Linear(32, 12)

    def forward(self, spectrogram):  # [1, 1, 49 frames, 10 coefficients]
        f = self.conv(spectrogram)  # [1, 8, 49, 5]
        f = f.permute(0, 2, 1, 3).reshape(spectrogram.shape[0], 49, 40)
        y, _ = self.rnn(f)
        return self.fc(y.mean(1))


class Cells(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTMCell(10, 16)
        self.gru = nn.GRUCell(16, 8)

    def forward(self, x, h, c):
        h2, c2 = self.lstm(x, (h, c))
        return self.gru(h2), c2


MODELS = {
    "kws_gru": (KwsGRU, lambda: (torch.randn(1, 49, 10),), "GRU"),
    "kws_lstm": (KwsLSTM, lambda: (torch.randn(1, 49, 10),), "LSTM"),
    "tagger": (Tagger, lambda: (torch.randint(0, 200, (1, 20)),), "LSTM"),
    "crnn": (CRNN, lambda: (torch.randn(1, 1, 49, 10),), "LSTM"),
    "cells": (Cells, lambda: (torch.randn(2, 10), torch.randn(2, 16), torch.randn(2, 16)), None),
}
EXPORTERS = {"torchscript": False, "dynamo": True}


class Store:
    def __init__(self, root: Path):
        self.root = root
        self.paths: dict[tuple[str, str], Path] = {}
        self.projects: dict[tuple[str, str], Path] = {}
        self.rows: dict[str, dict] = {}

    def model(self, name: str, exporter: str) -> Path:
        key = (name, exporter)
        if key not in self.paths:
            make, args, _ = MODELS[name]
            torch.manual_seed(0)
            module = make().eval()
            path = self.root / f"{name}_{exporter}.onnx"
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                extra = {"external_data": False} if EXPORTERS[exporter] else {}
                torch.onnx.export(module, args(), str(path), dynamo=EXPORTERS[exporter], **extra)
            self.paths[key] = path
        return self.paths[key]

    def project(self, name: str, exporter: str) -> Path:
        key = (name, exporter)
        if key not in self.projects:
            result = compile_model(str(self.model(name, exporter)), self.root / f"{name}_{exporter}_c",
                                   board=QEMU_BOARD)
            self.projects[key] = result.out_dir
            self.row(name, exporter)["peak_bytes"] = result.report["arena_bytes"]
        return self.projects[key]

    def row(self, name: str, exporter: str) -> dict:
        return self.rows.setdefault(f"{name} ({exporter})", {})


@pytest.fixture(scope="module")
def store(request, tmp_path_factory):
    made = Store(tmp_path_factory.mktemp("recurrent_models"))
    yield made
    print_table(request, made.rows, ["sim_rel_err", "host_rel_err", "qemu_rel_err", "peak_bytes",
                                     "qemu_instructions"])


@pytest.mark.parametrize("exporter", list(EXPORTERS))
@pytest.mark.parametrize("name", list(MODELS))
def test_export_runs_in_simulator(store, name, exporter):
    import onnx

    path = store.model(name, exporter)
    op = MODELS[name][2]
    if op is not None:  # the sequence models keep the ONNX recurrent op (no unrolling)
        assert op in {n.op_type for n in onnx.load(str(path)).graph.node}
    report = simulate(str(path))
    store.row(name, exporter)["sim_rel_err"] = report.max_scaled_err
    assert report.max_scaled_err is not None and report.max_scaled_err <= MAX_REL_ERR


@needs_host
@pytest.mark.parametrize("exporter", list(EXPORTERS))
@pytest.mark.parametrize("name", list(MODELS))
def test_generated_c_on_host(store, name, exporter):
    data = run_project_dir(str(store.project(name, exporter)), "host")
    store.row(name, exporter)["host_rel_err"] = data["max_scaled_err"]
    assert data["reference"] == "onnxruntime"
    assert data["max_scaled_err"] <= MAX_REL_ERR


@needs_qemu
@pytest.mark.parametrize("exporter", list(EXPORTERS))
@pytest.mark.parametrize("name", list(MODELS))
def test_generated_c_under_qemu(store, name, exporter):
    data = run_project_dir(str(store.project(name, exporter)), "qemu")
    row = store.row(name, exporter)
    row.update(qemu_rel_err=data["max_scaled_err"], qemu_instructions=data["instructions"])
    assert data["reference"] == "onnxruntime"
    assert data["max_scaled_err"] <= MAX_REL_ERR
    assert data["instructions"] > 0
