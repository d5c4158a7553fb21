"""ctypes bindings of runtime_c/o2m_s8_*.c for tests: the C structures, a
library builder, and `CKernels`, which runs the C kernels behind the same
signatures as onnx2mcu.ops.int8_ref (so a model can be run with either).
"""
from __future__ import annotations

import ctypes
from ctypes import Structure, c_float, c_int32, c_void_p
from pathlib import Path

import numpy as np

from c_harness import build_and_load, declare, i32, ptr, runtime_dir
from onnx2mcu.ops import int8_ref as R

I = c_int32
P = c_void_p

SHIM_C = r"""
#include "o2m_s8_common.h"
int32_t t_srdhm(int32_t a, int32_t b);
int32_t t_rdbp(int32_t x, int32_t e);
int32_t t_mbqm(int32_t x, int32_t m, int32_t s);
int32_t t_round_even(float v);
int32_t t_srdhm(int32_t a, int32_t b) { return o2m_s8_srdhm(a, b); }
int32_t t_rdbp(int32_t x, int32_t e) { return o2m_s8_rdbp(x, e); }
int32_t t_mbqm(int32_t x, int32_t m, int32_t s) { return o2m_s8_mbqm(x, m, s); }
int32_t t_round_even(float v) { return o2m_s8_round_even(v); }
"""


# ----------------------------------------------------------------- C structures
class Requant(Structure):
    _fields_ = [("multipliers", P), ("shifts", P), ("scales", P), ("per_channel", I),
                ("output_offset", I), ("act_min", I), ("act_max", I)]


class ConvP(Structure):
    _fields_ = [(n, I) for n in ("n", "c_in", "h_in", "w_in", "c_out", "h_out", "w_out", "k_h", "k_w",
                                 "stride_h", "stride_w", "dil_h", "dil_w", "pad_top", "pad_left", "groups",
                                 "input_offset")] + [("requant", Requant), ("filter_offset", I)]


class FCP(Structure):
    _fields_ = [(n, I) for n in ("batch", "in_features", "out_features", "input_offset",
                                 "filter_offset")] + [("requant", Requant)]


class MatmulP(Structure):
    _fields_ = [(n, I) for n in ("batch", "m", "n", "k", "a_batch_stride", "b_batch_stride", "a_offset",
                                 "b_offset")] + [("requant", Requant)]


class AddP(Structure):
    _fields_ = [(n, I) for n in ("input1_offset", "input2_offset", "output_offset", "left_shift",
                                 "input1_multiplier", "input1_shift", "input2_multiplier", "input2_shift",
                                 "output_multiplier", "output_shift", "act_min", "act_max", "float_mode")] + [
        (n, c_float) for n in ("ratio_a", "ratio_b", "float_offset", "float_offset_sub")] + [
        (n, I) for n in ("value_offset_a", "value_offset_b", "value_offset_y")]


class MulP(Structure):
    _fields_ = [(n, I) for n in ("input1_offset", "input2_offset", "output_offset", "output_multiplier",
                                 "output_shift", "act_min", "act_max", "float_mode")] + [("float_scale", c_float)]


class RequantP(Structure):
    _fields_ = [(n, I) for n in ("input_offset", "output_offset", "multiplier", "shift", "float_mode")] + [
        ("scale", c_float)]


class PoolP(Structure):
    _fields_ = [(n, I) for n in ("n", "c", "h_in", "w_in", "h_out", "w_out", "k_h", "k_w", "stride_h",
                                 "stride_w", "pad_top", "pad_left", "act_min", "act_max", "count_include_pad",
                                 "pad_value")]


MEAN_METHODS = {"rescale": 0, "same": 1, "float": 2}  # O2M_S8_MEAN_*


class MeanP(Structure):
    _fields_ = [(n, I) for n in ("method", "input_zero_point", "output_zero_point", "multiplier", "shift")] + [
        ("scale", c_float)]


class SoftmaxP(Structure):
    _fields_ = [(n, I) for n in ("input_multiplier", "input_left_shift", "diff_min")]


STRUCTS = {"o2m_s8_requant": Requant, "o2m_conv2d_s8_params": ConvP, "o2m_fully_connected_s8_params": FCP,
           "o2m_batch_matmul_s8_params": MatmulP, "o2m_add_s8_params": AddP, "o2m_mul_s8_params": MulP,
           "o2m_requantize_s8_params": RequantP, "o2m_pool2d_s8_params": PoolP, "o2m_mean_s8_params": MeanP,
           "o2m_softmax_s8_params": SoftmaxP}

PROBE_C = ("#include <stddef.h>\n#include \"o2m_s8_conv.h\"\n#include \"o2m_s8_elementwise.h\"\n"
           "#include \"o2m_s8_pool.h\"\n#include \"o2m_s8_softmax.h\"\n") + "".join(
    f"size_t probe_{n}(void);\nsize_t probe_{n}(void) {{ return sizeof({n}); }}\n" for n in STRUCTS)


def build_s8_library(out_dir: Path) -> ctypes.CDLL:
    """All o2m_s8_*.c plus a shim exporting the inline fixed-point helpers and sizeof probes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shim = out_dir / "shim_s8.c"
    shim.write_text(SHIM_C + PROBE_C)
    sources = sorted(runtime_dir().glob("o2m_s8_*.c")) + [shim]
    return build_and_load(sources, out_dir, name="s8", include_dirs=[runtime_dir()])


def requant_struct(mult, shift, scales, per_channel, zp, lo, hi, keep: list) -> Requant:
    """An o2m_s8_requant; the arrays it points to are appended to `keep` (keep it alive for the call)."""
    mult, shift = np.ascontiguousarray(mult, np.int32), np.ascontiguousarray(shift, np.int32)
    keep += [mult, shift]
    sc = None
    if scales is not None:
        sc = np.ascontiguousarray(scales, np.float32)
        keep.append(sc)
    return Requant(ptr(mult), ptr(shift), ptr(sc), int(per_channel), zp, lo, hi)


def _bcast_strides(shape, out_shape) -> list[int]:
    shape = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    dense = np.cumprod((1,) + shape[::-1])[:-1][::-1]
    return [0 if s == 1 and o != 1 else int(d) for s, o, d in zip(shape, out_shape, dense)]


class CKernels:
    """The C kernels with int8_ref's signatures (Params from int8_ref's builders)."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib

    def conv2d(self, x, w, bias, p: R.ConvParams, mode: str = "fixed"):
        f = declare(self.lib, "o2m_conv2d_s8", None, P, P, P, P, P)
        n, c_in, h, wd = x.shape
        c_out, _, kh, kw = w.shape
        ho, wo = R.conv_output_hw(h, wd, kh, kw, p)
        keep: list = []
        rq = requant_struct(p.multipliers, p.shifts, p.float_scales if mode == "float" else None, True,
                            p.output_offset, p.act_min, p.act_max, keep)
        cp = ConvP(n, c_in, h, wd, c_out, ho, wo, kh, kw, *p.stride, *p.dilation, p.pads[0], p.pads[1],
                   p.groups, p.input_offset, rq, p.filter_offset)
        y = np.zeros((n, c_out, ho, wo), np.int8)
        b = None if bias is None else np.ascontiguousarray(bias, np.int32)
        f(ctypes.byref(cp), ptr(np.ascontiguousarray(x)), ptr(np.ascontiguousarray(w)), ptr(b), ptr(y))
        return y

    def fully_connected(self, x, w, bias, p: R.FCParams, mode: str = "fixed"):
        f = declare(self.lib, "o2m_fully_connected_s8", None, P, P, P, P, P)
        x = np.ascontiguousarray(x)
        batch, k = x.shape
        nf = w.shape[0]
        per_channel = np.size(p.multipliers) > 1
        keep: list = []
        rq = requant_struct(p.multipliers, p.shifts, p.float_scales if mode == "float" else None, per_channel,
                            p.output_offset, p.act_min, p.act_max, keep)
        y = np.zeros((batch, nf), np.int8)
        b = None if bias is None else np.ascontiguousarray(bias, np.int32)
        f(ctypes.byref(FCP(batch, k, nf, p.input_offset, p.filter_offset, rq)), ptr(x),
          ptr(np.ascontiguousarray(w)), ptr(b), ptr(y))
        return y

    def _binary(self, name, cp, a, b):
        f = declare(self.lib, name, None, P, I, P, P, P, P, P, P)
        out = tuple(np.broadcast_shapes(a.shape, b.shape))
        y = np.zeros(out, np.int8)
        f(ctypes.byref(cp), len(out), ptr(i32(out)), ptr(i32(_bcast_strides(a.shape, out))),
          ptr(i32(_bcast_strides(b.shape, out))), ptr(np.ascontiguousarray(a)), ptr(np.ascontiguousarray(b)),
          ptr(y))
        return y

    @staticmethod
    def _add_struct(p, mode):
        return AddP(p.input1_offset, p.input2_offset, p.output_offset, p.left_shift, p.input1_multiplier,
                    p.input1_shift, p.input2_multiplier, p.input2_shift, p.output_multiplier, p.output_shift,
                    p.act_min, p.act_max, mode == "float", p.ratio_a, p.ratio_b, p.float_offset,
                    p.float_offset_sub, p.value_offset_a, p.value_offset_b, p.value_offset_y)

    def add(self, a, b, p, mode: str = "fixed"):
        return self._binary("o2m_add_s8", self._add_struct(p, mode), a, b)

    def sub(self, a, b, p, mode: str = "fixed"):
        return self._binary("o2m_sub_s8", self._add_struct(p, mode), a, b)

    def mul(self, a, b, p, mode: str = "fixed"):
        cp = MulP(p.input1_offset, p.input2_offset, p.output_offset, p.output_multiplier, p.output_shift,
                  p.act_min, p.act_max, mode == "float", p.float_scale)
        return self._binary("o2m_mul_s8", cp, a, b)

    def _pool(self, name, x, p: R.PoolParams, zp: int):
        f = declare(self.lib, name, None, P, P, P)
        n, c, h, w = x.shape
        t, l, b, r = p.pads
        ho = (h + t + b - p.kernel[0]) // p.stride[0] + 1
        wo = (w + l + r - p.kernel[1]) // p.stride[1] + 1
        y = np.zeros((n, c, ho, wo), np.int8)
        cp = PoolP(n, c, h, w, ho, wo, *p.kernel, *p.stride, t, l, p.act_min, p.act_max,
                   int(p.count_include_pad), int(zp))
        f(ctypes.byref(cp), ptr(np.ascontiguousarray(x)), ptr(y))
        return y

    def maxpool(self, x, p):
        return self._pool("o2m_maxpool2d_s8", x, p, 0)

    def avgpool(self, x, p, input_zero_point: int = 0):
        return self._pool("o2m_avgpool2d_s8", x, p, input_zero_point)

    def mean(self, x, axes, p: R.MeanParams, keepdims: bool = True):
        axes = sorted(int(a) % x.ndim for a in np.atleast_1d(axes))
        if axes != list(range(axes[0], axes[-1] + 1)):
            raise ValueError("o2m_mean_s8 reduces contiguous axes")
        outer = int(np.prod(x.shape[:axes[0]]))
        reduce = int(np.prod([x.shape[a] for a in axes]))
        inner = int(np.prod(x.shape[axes[-1] + 1:]))
        f = declare(self.lib, "o2m_mean_s8", None, P, I, I, I, P, P)
        y = np.zeros(outer * inner, np.int8)
        cp = MeanP(MEAN_METHODS[p.method], p.input_zero_point, p.output_zero_point, p.multiplier, p.shift,
                   p.float_scale)
        f(ctypes.byref(cp), outer, reduce, inner, ptr(np.ascontiguousarray(x)), ptr(y))
        shape = [1 if a in axes else d for a, d in enumerate(x.shape)] if keepdims else \
            [d for a, d in enumerate(x.shape) if a not in axes]
        return y.reshape(shape)

    def softmax(self, x, p, axis: int = -1):
        axis = axis % x.ndim
        outer = int(np.prod(x.shape[:axis]))
        inner = int(np.prod(x.shape[axis + 1:]))
        f = declare(self.lib, "o2m_softmax_s8", None, P, I, I, I, P, P)
        y = np.zeros(x.shape, np.int8)
        f(ctypes.byref(SoftmaxP(p.input_multiplier, p.input_left_shift, p.diff_min)), outer, x.shape[axis],
          inner, ptr(np.ascontiguousarray(x)), ptr(y))
        return y

    def requantize(self, x, p, mode: str = "fixed"):
        f = declare(self.lib, "o2m_requantize_s8", None, P, I, P, P)
        x = np.ascontiguousarray(x)
        y = np.zeros(x.shape, np.int8)
        f(ctypes.byref(RequantP(p.input_offset, p.output_offset, p.multiplier, p.shift, mode == "float",
                                p.float_scale)), x.size, ptr(x), ptr(y))
        return y
