"""A small U-Net from PyTorch (ConvTranspose up-sampling, Resize bilinear / nearest, skip
concatenations) against onnxruntime: in the simulator, through the C on the host and under
QEMU mps2-an386 (issue 12, items 3 and 5).  Nobody here wrote the exporter's graph."""
from __future__ import annotations

import shutil
from pathlib import Path

import onnx
import pytest

import onnx2mcu
from onnx2mcu.build import compile_model
from onnx2mcu.runner import run_project_dir

QEMU_BOARD = "mps2-an386"
MAX_REL_ERR = 1e-4
HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
HAVE_QEMU = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None

pytestmark = pytest.mark.slow


def _unet_module():
    torch = pytest.importorskip("torch", reason="torch (the `export` extra) exports the U-Net")
    nn = torch.nn

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU())

    class SmallUNet(nn.Module):
        """Two levels down, a transposed-conv and two Resize up-samplings back up."""

        def __init__(self):
            super().__init__()
            self.enc1, self.enc2, self.mid = block(3, 8), block(8, 16), block(16, 32)
            self.pool = nn.MaxPool2d(2)
            self.up2 = nn.ConvTranspose2d(32, 16, 2, stride=2)
            self.dec2 = block(32, 16)
            self.up1 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            self.dec1 = block(16 + 8, 8)
            self.head = nn.Sequential(nn.ConvTranspose2d(8, 4, 3, stride=1, padding=1),
                                      nn.Upsample(scale_factor=2, mode="nearest"),
                                      nn.Conv2d(4, 2, 1))

        def forward(self, x):
            e1 = self.enc1(x)
            e2 = self.enc2(self.pool(e1))
            m = self.mid(self.pool(e2))
            d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
            d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
            return self.head(d1)

    torch.manual_seed(0)
    return torch, SmallUNet().eval()


@pytest.fixture(scope="module")
def unet_path(tmp_path_factory) -> Path:
    torch, model = _unet_module()
    path = tmp_path_factory.mktemp("unet") / "small_unet.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), str(path), input_names=["image"],
                      output_names=["mask"], opset_version=17, dynamo=False)
    return path


def test_the_export_has_convtranspose_and_resize(unet_path):
    ops = {node.op_type for node in onnx.load(str(unet_path)).graph.node}
    assert {"ConvTranspose", "Resize", "Concat", "MaxPool"} <= ops


def test_unet_in_the_simulator(unet_path):
    report = onnx2mcu.simulate(str(unet_path))
    assert report.agreement is not None
    assert report.max_scaled_err <= MAX_REL_ERR
    assert report.graph.tensors["mask"].shape == (1, 2, 64, 64)


@pytest.fixture(scope="module")
def unet_project(unet_path, tmp_path_factory) -> Path:
    return compile_model(str(unet_path), tmp_path_factory.mktemp("unet_c") / "unet",
                         board=QEMU_BOARD).out_dir


@pytest.mark.skipif(not HAVE_HOST, reason="gcc / make not installed")
def test_unet_on_host(unet_project):
    data = run_project_dir(str(unet_project), "host")
    print(f"\nsmall U-Net host: max_rel_err {data['max_scaled_err']:.2e}")
    assert data["max_scaled_err"] <= MAX_REL_ERR


@pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-arm / arm-none-eabi-gcc not installed")
def test_unet_under_qemu(unet_project):
    data = run_project_dir(str(unet_project), "qemu")
    print(f"\nsmall U-Net {QEMU_BOARD}: max_rel_err {data['max_scaled_err']:.2e}, "
          f"{data['instructions']:,} instructions, flash {data['flash_bytes']:,} B, "
          f"RAM {data['ram_bytes']:,} B")
    assert data["max_scaled_err"] <= MAX_REL_ERR
    assert data["instructions"] > 0
