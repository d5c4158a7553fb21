"""Small PyTorch models quantized with PT2E (torchao) and exported to ONNX, for the tests.

PT2E is PyTorch's post-training quantization of an exported graph: `prepare_pt2e` inserts
observers where a Quantizer says, a few seeded random batches calibrate them, `convert_pt2e`
writes quantize/dequantize ops, and torch.onnx's dynamo exporter turns those into ONNX
QuantizeLinear/DequantizeLinear.  The quantizer is torchao's copy of XNNPACK's (static, int8
activations per tensor, int8 weights symmetric per output channel, biases left float).
X86InductorQuantizer, the public one, leaves the outputs of the last ops before a pool or a
graph output unquantized (its kernels fuse them), so its graphs keep float convolutions by
design; XNNPACK's quantizes every op's output, as a microcontroller runtime wants.

Weights are seeded; nothing is downloaded.  Needs torch and torchao (the `export` extra).
"""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

CALIBRATION_BATCHES = 16


def pt2e_missing() -> str | None:
    """Why PT2E quantization cannot run here, or None."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return "torch is not installed (pip install -e '.[export]')"
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e  # noqa: F401
        from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer  # noqa: F401
    except ImportError as exc:
        return f"torchao with PT2E and its XNNPACK quantizer is not installed ({exc})"
    return None


def cnn_model():
    """conv-bn-relu, depthwise conv-bn-relu6, max pool, pointwise conv-relu, a residual block
    (relu(x + conv(x))), global average pool, linear: 3x16x16 -> 10."""
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.dw_bn = nn.BatchNorm2d(8)
            self.pool = nn.MaxPool2d(2)
            self.pw = nn.Conv2d(8, 16, 1)
            self.res = nn.Conv2d(16, 16, 3, padding=1)
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = torch.relu(self.bn(self.conv(x)))
            x = nn.functional.relu6(self.dw_bn(self.dw(x)))
            x = torch.relu(self.pw(self.pool(x)))
            x = torch.relu(x + self.res(x))
            return self.fc(self.gap(x).flatten(1))

    torch.manual_seed(0)
    model = SmallCNN()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # batch norm statistics that are not the identity, so folding matters
        for bn in (model.bn, model.dw_bn):
            bn.running_mean.copy_(torch.rand(bn.num_features, generator=gen) * 0.4 - 0.2)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
            bn.weight.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
            bn.bias.copy_(torch.rand(bn.num_features, generator=gen) * 0.4 - 0.2)
    return model.eval(), (1, 3, 16, 16)


def mlp_model():
    """linear-relu, linear-relu, linear: 32 -> 5."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 5))
    return model.eval(), (1, 32)


MODELS = {"cnn": cnn_model, "mlp": mlp_model}


def quantize_and_export(name: str, path: str | Path, raw: bool = False, seed: int = 2) -> Path:
    """PT2E-quantize MODELS[name] (calibrated on seeded normal inputs) and write it as ONNX.

    `raw`: the weights stay float behind a QuantizeLinear (convert_pt2e's fold_quantize=False)
    and torch.onnx's optimizer is off, so the file keeps what the exporter first writes: the
    Casts that make the scales and zero points, one DequantizeLinear per reader of a value."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config

    path = Path(path)
    model, shape = MODELS[name]()
    gen = torch.Generator().manual_seed(seed)
    example = torch.randn(*shape, generator=gen)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # "XNNPACKQuantizer is deprecated" (it moved to ExecuTorch), export notes
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(torch.export.export(model, (example,)).module(), quantizer)
        with torch.no_grad():
            for _ in range(CALIBRATION_BATCHES):
                prepared(torch.randn(*shape, generator=gen))
        quantized = convert_pt2e(prepared, fold_quantize=not raw)
        torch.onnx.export(quantized, (example,), str(path), input_names=["x"], output_names=["y"],
                          dynamo=True, external_data=False, optimize=not raw)
    return path
