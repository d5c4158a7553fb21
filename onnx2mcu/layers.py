"""PyTorch modules for binary (XNOR) and adder (L1) layers, exportable in two ONNX forms.

    from onnx2mcu.layers import BinaryLinear, BinaryConv2d, AdderLinear, AdderConv2d, export
    export(model, (x,), "model.onnx", form="standard")   # plain ONNX ops, runs in onnxruntime
    export(model, (x,), "model.onnx", form="custom")     # onnx2mcu.BinaryMatMul & co.

Needs the `export` extra (torch); the rest of onnx2mcu imports without it.

Binary layers (BiBERT / BiPFT style): activations are binarized with
sign(x) = -1 if x < 0 else +1 (the onnx2mcu mapping: 0 gives +1), weights to
sign(W) * alpha with alpha the mean |W| of each output row (a per-output
scale), then the usual bias.  In training the sign has a clipped
straight-through gradient.  `sign_op="where"` (default) exports the
activation sign as Where(Less(x, 0), -1, 1), which onnxruntime evaluates
exactly as onnx2mcu does; `sign_op="sign"` exports ONNX Sign (what BiBERT
code emits), which gives 0 for an exact 0 where onnx2mcu gives +1.

Adder layers (AdderNet): y = -sum |x - w| over the reduction (linear) or the
receptive field (conv, through unfold, zero padded), optionally times a
scale; put a BatchNorm after them, onnx2mcu folds it into the layer.

Standard form: the ops PyTorch exports for the math above; onnx2mcu's
graph_opt recognises them (binarize.py, adder.py).  Custom form: one node of
the `onnx2mcu` domain per layer (attributes in ops/binary.py, ops/adder.py);
exported with the TorchScript exporter.
"""
from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from typing import Any, Sequence

_STATE = threading.local()


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("onnx2mcu.layers needs PyTorch: pip install 'onnx2mcu[export]'") from exc
    return torch


def _custom() -> bool:
    return getattr(_STATE, "form", "standard") == "custom"


def _exporting() -> bool:
    return getattr(_STATE, "form", None) is not None


def __getattr__(name: str):
    """Build the torch classes on first use, so importing this module needs no torch."""
    if name in _CLASSES:
        _build()
        return globals()[name]
    raise AttributeError(name)


_CLASSES = ("BinaryLinear", "BinaryConv2d", "AdderLinear", "AdderConv2d", "sign_pm1", "binarize_linears",
            "ResNet8", "randomize_batchnorms")


def _build() -> None:  # noqa: C901 - one place that defines every module
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    def sign_pm1(x, op: str = "where"):
        """-1 where x < 0, +1 elsewhere (op='sign': torch.sign, which gives 0 at 0)."""
        if op == "sign":
            return torch.sign(x)
        return torch.where(x < 0, -1.0, 1.0).to(x.dtype)

    class _SignSTE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, op="where"):
            ctx.save_for_backward(x)
            return sign_pm1(x, op)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (x.abs() <= 1).to(grad.dtype), None

    def binarize_act(x, op):
        if torch.is_grad_enabled() and x.requires_grad and not _exporting():
            return _SignSTE.apply(x, op)
        return sign_pm1(x, op)

    def binarize_weight(w):
        """sign(W) * mean|W| per output row (dim 0), with a straight-through gradient."""
        alpha = w.abs().reshape(w.shape[0], -1).mean(dim=1)
        alpha = alpha.reshape((-1,) + (1,) * (w.dim() - 1))
        wb = sign_pm1(w) * alpha
        if torch.is_grad_enabled() and w.requires_grad and not _exporting():
            return w + (wb - w).detach()
        return wb

    # ---- custom-domain nodes (TorchScript exporter symbolics) -------------------------
    def _conv_attrs(kernel, stride, padding, dilation) -> dict:
        return {"kernel_shape_i": list(kernel), "strides_i": list(stride),
                "pads_i": [padding[0], padding[1], padding[0], padding[1]],
                "dilations_i": list(dilation)}

    def _sizes(value):
        try:
            return value.type().sizes()
        except Exception:  # no complete shape known
            return None

    def _typed(out, like, shape):
        """Give a custom node's output the dtype of `like` and `shape` (when known)."""
        if shape is not None:
            out.setType(like.type().with_sizes(list(shape)))
        return out

    def _linear_out_shape(x, w):
        xs, ws = _sizes(x), _sizes(w)
        return None if xs is None or ws is None else list(xs[:-1]) + [ws[0]]

    def _conv_out_shape(x, w, kernel, stride, padding, dilation):
        xs, ws = _sizes(x), _sizes(w)
        if xs is None or ws is None:
            return None
        spatial = [(xs[2 + i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
                   for i in range(2)]
        return [xs[0], ws[0]] + spatial

    class _BinaryMatMulOp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, scale, bias):
            y = F.linear(sign_pm1(x), sign_pm1(w)) * scale
            return y + bias if bias is not None else y

        @staticmethod
        def symbolic(g, x, w, scale, bias):
            inputs = [x, w, scale] + ([bias] if bias is not None else [])
            out = g.op("onnx2mcu::BinaryMatMul", *inputs)
            return _typed(out, x, _linear_out_shape(x, w))

    class _BinaryConvOp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, scale, bias, kernel, stride, padding, dilation):
            y = F.conv2d(sign_pm1(x), sign_pm1(w), None, stride, padding, dilation)
            y = y * scale.reshape(1, -1, 1, 1)
            return y + bias.reshape(1, -1, 1, 1) if bias is not None else y

        @staticmethod
        def symbolic(g, x, w, scale, bias, kernel, stride, padding, dilation):
            inputs = [x, w, scale] + ([bias] if bias is not None else [])
            out = g.op("onnx2mcu::BinaryConv", *inputs, **_conv_attrs(kernel, stride, padding, dilation))
            return _typed(out, x, _conv_out_shape(x, w, kernel, stride, padding, dilation))

    class _AdderMatMulOp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            return -(x.unsqueeze(-2) - w).abs().sum(-1)

        @staticmethod
        def symbolic(g, x, w):
            return _typed(g.op("onnx2mcu::AdderMatMul", x, w), x, _linear_out_shape(x, w))

    class _AdderConvOp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, kernel, stride, padding, dilation):
            # traced for export only: the tracer needs the output's shape, and the
            # TorchScript exporter trips over unfold inside a Function, so a
            # convolution of the same geometry stands in (the node is the symbolic's)
            return F.conv2d(x, w, None, stride, padding, dilation)

        @staticmethod
        def symbolic(g, x, w, kernel, stride, padding, dilation):
            out = g.op("onnx2mcu::AdderConv", x, w, **_conv_attrs(kernel, stride, padding, dilation))
            return _typed(out, x, _conv_out_shape(x, w, kernel, stride, padding, dilation))

    def adder_conv(x, w, kernel, stride, padding, dilation):
        n, _, h, wd = x.shape
        m = w.shape[0]
        oh = (h + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
        ow = (wd + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
        cols = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)  # [N, K, L]
        y = -(cols.unsqueeze(1) - w.reshape(m, -1, 1)).abs().sum(2)  # [N, M, L]
        return y.reshape(n, m, oh, ow)

    def _pair(v) -> tuple[int, int]:
        return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))

    # ---- modules ---------------------------------------------------------------------
    class BinaryLinear(nn.Linear):
        """Linear layer with binarized activations and weights (per-output-row scale)."""

        def __init__(self, in_features: int, out_features: int, bias: bool = True,
                     sign_op: str = "where"):
            super().__init__(in_features, out_features, bias=bias)
            self.sign_op = sign_op

        def forward(self, x):
            if _custom():
                alpha = self.weight.abs().mean(dim=1)
                return _BinaryMatMulOp.apply(x, self.weight, alpha, self.bias)
            return F.linear(binarize_act(x, self.sign_op), binarize_weight(self.weight), self.bias)

    class BinaryConv2d(nn.Conv2d):
        """2-D convolution (groups=1) with binarized activations and weights; zero padding."""

        def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                     dilation=1, bias: bool = True, sign_op: str = "where"):
            super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                             dilation=dilation, bias=bias)
            self.sign_op = sign_op

        def forward(self, x):
            if _custom():
                alpha = self.weight.abs().reshape(self.out_channels, -1).mean(dim=1)
                return _BinaryConvOp.apply(x, self.weight, alpha, self.bias, _pair(self.kernel_size),
                                           _pair(self.stride), _pair(self.padding), _pair(self.dilation))
            return F.conv2d(binarize_act(x, self.sign_op), binarize_weight(self.weight), self.bias,
                            self.stride, self.padding, self.dilation)

    class AdderLinear(nn.Module):
        """y[.., n] = -sum_k |x[.., k] - W[n, k]| (follow it with a norm layer)."""

        def __init__(self, in_features: int, out_features: int):
            super().__init__()
            self.in_features, self.out_features = in_features, out_features
            self.weight = nn.Parameter(torch.randn(out_features, in_features) / in_features ** 0.5)

        def forward(self, x):
            if _custom():
                return _AdderMatMulOp.apply(x, self.weight)
            return -(x.unsqueeze(-2) - self.weight).abs().sum(-1)

    class AdderConv2d(nn.Module):
        """Adder 2-D convolution (groups=1, zero padding); follow it with BatchNorm2d."""

        def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                     dilation=1):
            super().__init__()
            self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
            self.padding, self.dilation = _pair(padding), _pair(dilation)
            self.in_channels, self.out_channels = in_channels, out_channels
            fan_in = in_channels * self.kernel_size[0] * self.kernel_size[1]
            self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *self.kernel_size) / fan_in ** 0.5)

        def forward(self, x):
            args = (self.kernel_size, self.stride, self.padding, self.dilation)
            if _custom():
                return _AdderConvOp.apply(x, self.weight, *args)
            return adder_conv(x, self.weight, *args)

    def binarize_linears(module, sign_op: str = "where"):
        """Replace every nn.Linear inside `module` by a BinaryLinear with the same weights (in place).

        BiBERT style: applied to a BERT encoder, every encoder linear layer becomes binary."""
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and not isinstance(child, BinaryLinear):
                new = BinaryLinear(child.in_features, child.out_features, bias=child.bias is not None,
                                   sign_op=sign_op)
                new.load_state_dict(child.state_dict())
                setattr(module, name, new)
            else:
                binarize_linears(child, sign_op)
        return module

    class _Block(nn.Module):
        def __init__(self, cin, cout, stride, adder):
            super().__init__()
            conv = (lambda i, o, k, s, p: AdderConv2d(i, o, k, s, p)) if adder else \
                (lambda i, o, k, s, p: nn.Conv2d(i, o, k, s, p, bias=False))
            self.conv1, self.bn1 = conv(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout)
            self.conv2, self.bn2 = conv(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout)
            self.short = None
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(conv(cin, cout, 1, stride, 0), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.short is None else self.short(x)))

    class ResNet8(nn.Module):
        """MLPerf Tiny ResNet-8 (CIFAR-10 shape, 3x32x32 -> 10); `adder`: every conv after the
        first is an AdderConv2d (AdderNet keeps the first conv and the classifier)."""

        def __init__(self, adder: bool = True, width: int = 16, classes: int = 10):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU())
            self.stack = nn.Sequential(_Block(width, width, 1, adder), _Block(width, 2 * width, 2, adder),
                                       _Block(2 * width, 4 * width, 2, adder))
            self.fc = nn.Linear(4 * width, classes)

        def forward(self, x):
            y = self.stack(self.stem(x))
            return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(y, 1), 1))

    def randomize_batchnorms(model, seed: int = 0):
        """Give every BatchNorm non-trivial statistics (random-weight models for compiler checks)."""
        gen = torch.Generator().manual_seed(seed)
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                n = mod.num_features
                mod.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
                mod.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                mod.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
                mod.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)
        return model

    globals().update(BinaryLinear=BinaryLinear, BinaryConv2d=BinaryConv2d, AdderLinear=AdderLinear,
                     AdderConv2d=AdderConv2d, sign_pm1=sign_pm1, binarize_linears=binarize_linears,
                     ResNet8=ResNet8, randomize_batchnorms=randomize_batchnorms)


@contextlib.contextmanager
def export_form(form: str):
    """Within this block, onnx2mcu layers trace as `form` ('standard' or 'custom')."""
    if form not in ("standard", "custom"):
        raise ValueError(f"form must be 'standard' or 'custom', not {form!r}")
    previous = getattr(_STATE, "form", None)
    _STATE.form = form
    try:
        yield
    finally:
        _STATE.form = previous


def export(model: Any, args: Sequence[Any], path: str | os.PathLike | None = None, form: str = "standard",
           opset: int = 17, dynamo: bool = False, input_names: Sequence[str] | None = None,
           output_names: Sequence[str] | None = None, **kwargs) -> "Any":
    """Export `model` to ONNX with its onnx2mcu layers in `form`; returns the onnx.ModelProto.

    `path` None: nothing is written.  The custom form needs the TorchScript
    exporter (dynamo=False, the default).
    """
    import onnx

    torch = _torch()
    _build()
    if form == "custom" and dynamo:
        raise ValueError("form='custom' needs dynamo=False (TorchScript exporter)")
    model.eval()
    args = tuple(args)
    with export_form(form), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(model, args, dynamo=True, opset_version=max(opset, 18),
                                        input_names=input_names, output_names=output_names, **kwargs)
            proto = program.model_proto
        else:
            buffer = io.BytesIO()
            extra = {"custom_opsets": {"onnx2mcu": 1}} if form == "custom" else {}
            with contextlib.redirect_stdout(io.StringIO()):
                torch.onnx.export(model, args, buffer, dynamo=False, opset_version=opset,
                                  input_names=input_names, output_names=output_names, **extra, **kwargs)
            proto = onnx.load_from_string(buffer.getvalue())
    if path is not None:
        onnx.save(proto, str(path))
    return proto
