"""The arm-dsp int8 kernels (runtime_c/o2m_s8_conv_dsp.c) against the portable ones, bit for bit.

One C program holds seeded random cases (odd channel counts, every stride / padding form,
dilation, depthwise multipliers and 1x1..7x7 windows, per-channel and per-tensor
multipliers from 2^-31 to 4, zero points at both ends, clamps that saturate); it runs each
case through the portable kernel and the fast one and prints the fast outputs and the
number of bytes where the two differ.  Under QEMU mps2-an386 (Cortex-M4, __ARM_FEATURE_DSP:
the SXTB16/SMLAD paths) and on the host (their plain C twins).  The fast outputs are also
compared with onnx2mcu.ops.int8_ref, the simulator's arithmetic.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from onnx2mcu.codegen.emit.int8_dsp import (col_bytes, folded_bias, pack_3x3, packs_3x3,  # noqa: F401
                                         pointwise_weights, tap_sums_3x3)
from onnx2mcu.ops import int8_ref as R

RUNTIME = Path(__file__).resolve().parents[1] / "runtime_c"
SOURCES = ("o2m_s8_conv.c", "o2m_s8_conv_dsp.c")
HEADERS = ("o2m_common.h", "o2m_s8_common.h", "o2m_s8_conv.h", "o2m_s8_conv_dsp.h")
HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
HAVE_QEMU = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None


def _requant(rng, c_out: int, per_channel: bool):
    count = c_out if per_channel else 1
    mult = rng.integers(1 << 30, (1 << 31) - 1, count)
    shift = rng.choice([-31, -20, -12, -9, -8, -7, -5, -3, -1, 0, 1, 2], count)
    if not per_channel:
        mult, shift = np.repeat(mult, c_out), np.repeat(shift, c_out)
    return mult.astype(np.int64), shift.astype(np.int64)


def _bias(rng, count: int) -> np.ndarray:
    if rng.integers(0, 10) == 0:
        # large, but no true accumulator leaves int32 (that would be undefined behaviour in C)
        return rng.choice([(1 << 30) + 128, -(1 << 30), 3 << 29, -(3 << 29)], count).astype(np.int32)
    return rng.integers(-(1 << 16), 1 << 16, count).astype(np.int32)


def _zero_point(rng) -> int:
    return int(rng.choice([-128, 127, int(rng.integers(-128, 128))]))


def _act(rng, zp_out: int) -> tuple[int, int]:
    kind = rng.integers(0, 3)
    if kind == 0:
        return -128, 127
    if kind == 1:
        return zp_out, 127  # Relu
    lo = int(rng.integers(-128, 0))
    return lo, int(rng.integers(lo, 128))


def make_case(rng, kind: str, pw_shape: tuple | None = None) -> dict:
    """One random case (every tenth with a bias near 2^30: accumulators whose rounding
    would overflow a naive add-half-then-shift); pw_shape = (n, c_in, c_out, h, w) fixes a
    pointwise case's geometry (a sixth item: every shift a right shift)."""
    while True:
        if kind == "fc" or (isinstance(kind, tuple) and kind[0] == "fc"):
            if isinstance(kind, tuple):  # ("fc", k, n): a chosen shape
                kind, k, n, batch = "fc", kind[1], kind[2], 1
            else:
                k, n, batch = int(rng.integers(1, 70)), int(rng.integers(1, 23)), int(rng.integers(1, 3))
            x = rng.integers(-128, 128, (batch, k)).astype(np.int8)
            w = rng.integers(-128, 128, (n, k)).astype(np.int8)
            bias = _bias(rng, n)
            mult, shift = _requant(rng, n, bool(rng.integers(0, 2)))
            zp_in, zp_out = _zero_point(rng), _zero_point(rng)
            lo, hi = _act(rng, zp_out)
            p = R.FCParams(-zp_in, 0, zp_out, mult, shift, np.zeros(n, np.float32), lo, hi)
            return {"kind": kind, "x": x, "w": w, "bias": bias, "p": p,
                    "y": R.fully_connected(x, w, bias, p)}
        if kind == "bmm" or (isinstance(kind, tuple) and kind[0] == "bmm"):
            # MatMul of two activations [batch, m, k] x [batch, k, n], both zero points random
            if isinstance(kind, tuple):
                kind, batch, m, k, n = kind
            else:
                batch, m, k, n = (int(rng.integers(1, 3)), int(rng.integers(1, 8)), int(rng.integers(1, 80)),
                                  int(rng.integers(1, 14)))
            x = rng.integers(-128, 128, (batch, m, k)).astype(np.int8)
            w = rng.integers(-128, 128, (batch, k, n)).astype(np.int8)
            mult, shift = _requant(rng, n, bool(rng.integers(0, 2)))
            zp_a, zp_b, zp_out = _zero_point(rng), _zero_point(rng), _zero_point(rng)
            lo, hi = _act(rng, zp_out)
            p = R.FCParams(-zp_a, -zp_b, zp_out, mult, shift, np.zeros(n, np.float32), lo, hi)
            return {"kind": kind, "x": x, "w": w, "bias": np.zeros(1, np.int32), "p": p,
                    "y": R.matmul(x, w, None, p)}
        depthwise = kind == "dw"
        c_in = int(rng.integers(1, 9)) if depthwise else int(rng.integers(1, 12))
        mult_ch = int(rng.integers(1, 3)) if depthwise else 1
        c_out = c_in * mult_ch if depthwise else int(rng.integers(1, 14))
        k_h, k_w = (int(rng.integers(1, 8)), int(rng.integers(1, 8))) if depthwise else \
            tuple(int(v) for v in rng.choice([1, 2, 3, 5], 2))
        if depthwise and rng.integers(0, 2):
            k_h = k_w = int(rng.choice([3, 5, 7]))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        dilation = (1, 1) if depthwise or rng.integers(0, 3) else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pads = tuple(int(rng.integers(0, max(1, kk))) for kk in (k_h, k_w, k_h, k_w))
        h = int(rng.integers(max(1, (k_h - 1) * dilation[0] + 1 - pads[0] - pads[2]), 14))
        wd = int(rng.integers(max(1, (k_w - 1) * dilation[1] + 1 - pads[1] - pads[3]), 14))
        n = int(rng.integers(1, 3))
        if kind == "c3":  # the packed 3x3 kernel: strides 1 and 2, pads 0..2, narrow inputs
            k_h = k_w = 3
            dilation = (1, 1)
            pads = tuple(int(rng.integers(0, 3)) for _ in range(4))
            h = int(rng.integers(max(1, 3 - pads[0] - pads[2]), 12))
            wd = int(rng.integers(max(1, 3 - pads[1] - pads[3]), 12))
        if kind == "pw":  # the 1x1 stride-1 unpadded form (its own column copy)
            k_h = k_w = 1
            stride, dilation, pads = (1, 1), (1, 1), (0, 0, 0, 0)
            c_in = int(rng.integers(1, 40))
            if pw_shape is not None:
                n, c_in, c_out, h, wd = pw_shape[:5]
        x = rng.integers(-128, 128, (n, c_in, h, wd)).astype(np.int8)
        w = rng.integers(-128, 128, (c_out, 1 if depthwise else c_in, k_h, k_w)).astype(np.int8)
        bias = _bias(rng, c_out)
        mult, shift = _requant(rng, c_out, bool(rng.integers(0, 2)))
        if pw_shape is not None and len(pw_shape) > 5:  # every shift a right shift
            shift = np.minimum(shift, -1)
        zp_in, zp_out = _zero_point(rng), _zero_point(rng)
        lo, hi = _act(rng, zp_out)
        p = R.ConvParams(stride, dilation, pads, c_in if depthwise else 1, -zp_in, zp_out, mult, shift,
                         np.zeros(c_out, np.float32), lo, hi)
        if depthwise and c_in == 1:
            continue  # groups 1: a dense conv
        ho, wo = R.conv_output_hw(h, wd, k_h, k_w, p)
        if ho < 1 or wo < 1:
            continue
        return {"kind": kind, "x": x, "w": w, "bias": bias, "p": p, "y": R.conv2d(x, w, bias, p),
                "hw_out": (ho, wo)}


# Depthwise shapes the arm-dsp kernel specialises (c_in, multiplier, h, w, k_h, k_w, stride, pads):
# KWS's 25x5 plane, planes 1, 2 and 3 wide, VWW's stride 2 with pads (0, 0, 1, 1), 5x5 / 7x7,
# multiplier 2; then planes the whole-plane buffer cannot hold (the row ring: tall, wider than
# one 128-output run) and one too wide for the ring (the per-plane fallback).
DW_SHAPES = [
    (4, 1, 25, 5, 3, 3, (1, 1), (1, 1, 1, 1)),
    (3, 1, 6, 1, 3, 3, (1, 1), (1, 1, 1, 1)),
    (3, 2, 5, 2, 3, 3, (1, 1), (1, 1, 1, 1)),
    (2, 1, 4, 3, 3, 3, (2, 2), (1, 1, 1, 1)),
    (3, 1, 7, 3, 3, 3, (1, 1), (0, 1, 0, 1)),
    (3, 1, 12, 12, 3, 3, (2, 2), (0, 0, 1, 1)),
    (2, 2, 11, 9, 3, 3, (2, 2), (1, 1, 1, 1)),
    (3, 1, 10, 10, 5, 5, (1, 1), (2, 2, 2, 2)),
    (2, 1, 5, 5, 7, 7, (1, 1), (3, 3, 3, 3)),
    (2, 1, 3, 3, 3, 3, (1, 1), (1, 1, 1, 1)),
    (2, 1, 16, 16, 7, 7, (2, 2), (0, 0, 0, 0)),
    (2, 1, 5, 5, 5, 5, (2, 2), (2, 2, 2, 2)),
    (2, 1, 40, 30, 3, 3, (1, 1), (1, 1, 1, 1)),
    (2, 1, 3, 150, 3, 3, (1, 1), (1, 1, 1, 1)),
    (2, 2, 36, 36, 5, 5, (2, 2), (2, 2, 2, 2)),
    (2, 1, 30, 26, 7, 7, (1, 1), (3, 3, 3, 3)),
    (2, 1, 4, 140, 7, 7, (1, 1), (3, 3, 3, 3)),
]


def dw_shape_case(rng, c_in, mult_ch, h, wd, k_h, k_w, stride, pads) -> dict:
    c_out = c_in * mult_ch
    x = rng.integers(-128, 128, (1, c_in, h, wd)).astype(np.int8)
    w = rng.integers(-128, 128, (c_out, 1, k_h, k_w)).astype(np.int8)
    bias = _bias(rng, c_out)
    mult, shift = _requant(rng, c_out, bool(rng.integers(0, 2)))
    zp_in, zp_out = _zero_point(rng), _zero_point(rng)
    lo, hi = _act(rng, zp_out)
    p = R.ConvParams(stride, (1, 1), pads, c_in, -zp_in, zp_out, mult, shift, np.zeros(c_out, np.float32), lo, hi)
    return {"kind": "dw", "x": x, "w": w, "bias": bias, "p": p, "y": R.conv2d(x, w, bias, p),
            "hw_out": R.conv_output_hw(h, wd, k_h, k_w, p)}
def conv3_case(rng, c_in: int, c_out: int, h: int, wd: int, stride: tuple, pads: tuple) -> dict:
    """A dense 3x3 case of the given geometry (the packed kernel's forms, chosen, not drawn)."""
    x = rng.integers(-128, 128, (1, c_in, h, wd)).astype(np.int8)
    w = rng.integers(-128, 128, (c_out, c_in, 3, 3)).astype(np.int8)
    bias = _bias(rng, c_out)
    mult, shift = _requant(rng, c_out, True)
    zp_in, zp_out = _zero_point(rng), _zero_point(rng)
    lo, hi = _act(rng, zp_out)
    p = R.ConvParams(stride, (1, 1), pads, 1, -zp_in, zp_out, mult, shift, np.zeros(c_out, np.float32), lo, hi)
    return {"kind": "c3", "x": x, "w": w, "bias": bias, "p": p, "y": R.conv2d(x, w, bias, p),
            "hw_out": R.conv_output_hw(h, wd, 3, 3, p)}


def cases(seed: int = 14, per_kind: int = 14) -> list[dict]:
    rng = np.random.default_rng(seed)
    drawn = [make_case(rng, kind) for kind in ("conv", "pw", "dw", "fc", "c3", "bmm") for _ in range(per_kind)]
    # input widths 1..9 at both strides, 1-pixel pads all round or right/bottom only (TF
    # SAME), odd and even channel counts; and a ResNet-8-like 16 -> 16 layer
    chosen = [conv3_case(rng, 3 + wd % 3, 3 + wd % 4, 4 + wd % 3, wd, (1 + wd % 2, sw),
                         (1, 1, 1, 1) if (wd + sw) % 3 else (0, 0, 1, 1)) for sw in (1, 2) for wd in range(1, 10)]
    chosen.append(conv3_case(rng, 16, 16, 10, 10, (1, 1), (1, 1, 1, 1)))
    drawn += [make_case(rng, "pw", shape) for shape in PW_SHAPES]  # after: the drawn ones as before
    rng = np.random.default_rng(seed + 1)
    return (drawn + [c for c in chosen if min(c["hw_out"]) >= 1]
            + [dw_shape_case(rng, *shape) for shape in DW_SHAPES]
            + [make_case(rng, ("fc",) + shape) for shape in FC_SHAPES]
            + [make_case(rng, ("bmm",) + shape) for shape in BMM_SHAPES])


# fully connected shapes for the Cortex-M kernel's forms: four rows per step (and 1-3 left),
# four words per loop step, then one to three words, then one to three values
FC_SHAPES = ((16, 4), (24, 4), (64, 8), (80, 5), (44, 7), (12, 6), (3, 9), (133, 11), (640, 4))


# (batch, m, k, n) batched MatMul cases: attention's shapes (Q K^T of a 2-head tile, P V with
# k = 128 and k = 512, the kernel's largest), odd m (one row left), odd k, n % 4 columns left
BMM_SHAPES = ((2, 5, 64, 128), (2, 4, 128, 64), (1, 3, 512, 8), (1, 2, 7, 3), (3, 1, 1, 5), (1, 6, 33, 17))


# (n, c_in, c_out, h, w) pointwise cases for the 4x2 tiles: planes 1, 2, 3, 5, 125 (odd:
# the last pixel pair overlaps), odd input (the last channel from the ONNX-order weights)
# and output channel counts (a partial group of four), KWS's 64 -> 64 on 25x5
PW_SHAPES = ((1, 3, 5, 1, 1), (1, 1, 3, 1, 2), (2, 7, 6, 3, 1), (1, 2, 1, 1, 5), (1, 64, 64, 25, 5),
             (2, 33, 13, 5, 1), (1, 16, 4, 2, 2), (1, 9, 7, 5, 25), (1, 1, 6, 2, 3),
             (1, 128, 8, 3, 3), (1, 130, 12, 4, 4), (1, 129, 9, 2, 3), (2, 160, 16, 1, 3), (1, 128, 8, 1, 2, "right"),
             (1, 132, 10, 3, 1, "right"), (1, 144, 8, 2, 2))


def _pointwise(c: dict) -> bool:
    p = c["p"]
    return c["kind"] in ("conv", "pw") and c["w"].shape[2:] == (1, 1) and p.stride == (1, 1) \
        and not any(p.pads) and c["x"].shape[2] * c["x"].shape[3] >= 2


def _arr(ctype: str, name: str, values) -> str:
    values = [int(v) for v in np.asarray(values).reshape(-1)] or [0]
    return f"static const {ctype} {name}[{len(values)}] = {{{', '.join(map(str, values))}}};"


def program(all_cases: list[dict]) -> str:
    """main.c: every case through both kernels; prints fast_<i> (s8) and `mismatches` (s32)."""
    decls, body = [], []
    scratch = 16
    y_max = max(c["y"].size for c in all_cases)
    for i, c in enumerate(all_cases):
        p = c["p"]
        decls += [_arr("int8_t", f"x{i}", c["x"]), _arr("int8_t", f"w{i}", c["w"]),
                  _arr("int32_t", f"m{i}", p.multipliers), _arr("int32_t", f"s{i}", p.shifts)]
        if c["kind"] != "bmm":  # no bias: b is an activation
            decls += [_arr("int32_t", f"b{i}", c["bias"]),
                      _arr("int32_t", f"f{i}", folded_bias(c["w"], c["bias"], p.input_offset))]
        rq_port = f"{{m{i}, s{i}, NULL, 1, {p.output_offset}, {p.act_min}, {p.act_max}}}"
        rq_fast = f"{{m{i}, s{i}, 1, {p.output_offset}, {p.act_min}, {p.act_max}}}"
        if c["kind"] == "bmm":
            batch, m, k = c["x"].shape
            n = c["w"].shape[2]
            fields = f"{batch}, {m}, {n}, {k}, {m * k}, {k * n}, {p.input_offset}, {p.filter_offset}, {rq_port}"
            body.append(f"""    {{
        static const o2m_batch_matmul_s8_params bp = {{{fields}}};
        o2m_batch_matmul_s8(&bp, x{i}, w{i}, NULL, y_ref);
        o2m_batch_matmul_s8_dsp(&bp, x{i}, w{i}, y_fast);
        mismatches[{i}] = count_diff(y_ref, y_fast, {c['y'].size});
        o2m_out_s8("fast_{i}", y_fast, {c['y'].size}u);
    }}""")
            continue
        if c["kind"] == "fc":
            batch, k = c["x"].shape
            n = c["w"].shape[0]
            body.append(f"""    {{
        static const o2m_fully_connected_s8_params pp = {{{batch}, {k}, {n}, {p.input_offset}, 0, {rq_port}}};
        static const o2m_fully_connected_s8_dsp_params fp = {{{batch}, {k}, {n}, f{i}, {rq_fast}}};
        o2m_fully_connected_s8(&pp, x{i}, w{i}, b{i}, y_ref);
        o2m_fully_connected_s8_dsp(&fp, x{i}, w{i}, y_fast);
        mismatches[{i}] = count_diff(y_ref, y_fast, {c['y'].size});
        o2m_out_s8("fast_{i}", y_fast, {c['y'].size}u);
    }}""")
            continue
        n, c_in, h, wd = c["x"].shape
        c_out, _, k_h, k_w = c["w"].shape
        ho, wo = c["hw_out"]
        geometry = (f"{c_in}, {h}, {wd}, {c_out}, {ho}, {wo}, {k_h}, {k_w}, {p.stride[0]}, {p.stride[1]}, "
                    f"{p.dilation[0]}, {p.dilation[1]}, {p.pads[0]}, {p.pads[1]}")
        depthwise = c["kind"] == "dw"
        fn = "o2m_depthwise_conv2d_s8_dsp" if depthwise else "o2m_conv2d_s8_dsp"
        taps, scratch_form, packed_form = "NULL", "", ""
        if not depthwise and k_h == k_w == 3 and p.groups == 1 and p.dilation == (1, 1) and p.stride[1] <= 2:
            # the packed kernel also for c_in < 4 (the emitter does not pack those: slower, not wrong)
            decls += [_arr("int8_t", f"pk{i}", pack_3x3(c["w"])), _arr("int32_t", f"ts{i}", tap_sums_3x3(c["w"]))]
            packed_form = f"""
        {{
            static const o2m_conv2d_s8_dsp_params fpk = {{{n}, {geometry}, {-p.input_offset}, f{i}, b{i}, t{i}, .requant = {rq_fast}, .packed = pk{i}, .tap_sums = ts{i}}};
            memset(y_fast, 0x55, sizeof y_fast);
            {fn}(&fpk, x{i}, w{i}, y_fast, NULL);
            mismatches[{i}] += count_diff(y_ref, y_fast, {c['y'].size});
            o2m_out_s8("fast_p_{i}", y_fast, {c['y'].size}u);
        }}"""
        if not depthwise:  # also the scratch (im2col) form
            scratch = max(scratch, 6 * col_bytes(c_in * k_h * k_w))
            scratch_form = f"""
        {fn}(&fp, x{i}, w{i}, y_fast, scratch);
        mismatches[{i}] += count_diff(y_ref, y_fast, {c['y'].size});
        o2m_out_s8("fast_s_{i}", y_fast, {c['y'].size}u);"""
            ic, kh, kw = np.meshgrid(np.arange(c_in), np.arange(k_h), np.arange(k_w), indexing="ij")
            decls.append(_arr("int32_t", f"t{i}", ic * h * wd + kh * p.dilation[0] * wd + kw * p.dilation[1]))
            taps = f"t{i}"
        pw_form = ""
        if _pointwise(c):  # the 4x2 tiles over re-laid-out weights
            decls.append(_arr("int8_t", f"pw{i}", pointwise_weights(c["w"])))
            pw_form = f"""
        {{
            static const o2m_conv2d_s8_dsp_params fq = {{{n}, {geometry}, {-p.input_offset}, f{i}, b{i}, {taps}, .requant = {rq_fast}, .pw_weights = pw{i}}};
            {fn}(&fq, x{i}, w{i}, y_fast, NULL);
            mismatches[{i}] += count_diff(y_ref, y_fast, {c['y'].size});
            o2m_out_s8("fast_pw_{i}", y_fast, {c['y'].size}u);
            {fn}(&fq, x{i}, w{i}, y_fast, scratch);
            mismatches[{i}] += count_diff(y_ref, y_fast, {c['y'].size});
            o2m_out_s8("fast_pws_{i}", y_fast, {c['y'].size}u);
        }}"""
        body.append(f"""    {{
        static const o2m_conv2d_s8_params pp = {{{n}, {geometry}, {p.groups}, {p.input_offset}, {rq_port}, 0}};
        static const o2m_conv2d_s8_dsp_params fp = {{{n}, {geometry}, {-p.input_offset}, f{i}, b{i}, {taps}, .requant = {rq_fast}}};
        o2m_conv2d_s8(&pp, x{i}, w{i}, b{i}, y_ref);
        {fn}(&fp, x{i}, w{i}, y_fast, NULL);
        mismatches[{i}] = count_diff(y_ref, y_fast, {c['y'].size});
        o2m_out_s8("fast_{i}", y_fast, {c['y'].size}u);{scratch_form}{packed_form}{pw_form}
    }}""")
    return "\n".join([
        '#include <string.h>', '#include "o2m_s8_conv.h"', '#include "o2m_s8_conv_dsp.h"', '#include "o2m_io.h"', *decls,
        f"static int8_t y_ref[{y_max}], y_fast[{y_max}];",
        f"static int32_t scratch_words[{(scratch + 3) // 4}];  /* the kernels' scratch is 4-byte aligned */",
        "#define scratch ((int8_t *)(void *)scratch_words)",
        f"static int32_t mismatches[{len(all_cases)}];",
        "static int32_t count_diff(const int8_t *a, const int8_t *b, int32_t n)",
        "{", "    int32_t i, bad = 0;", "    for (i = 0; i < n; ++i) {", "        bad += a[i] != b[i];",
        "    }", "    return bad;", "}",
        "int main(void)", "{", *body,
        f'    o2m_out_s32("mismatches", mismatches, {len(all_cases)}u);', "    o2m_done();", "    return 0;", "}", ""])


def build_program(tmp: Path, target: str, all_cases: list[dict]) -> Path:
    from onnx2mcu.codegen.board_project import write_board_files

    for name in SOURCES + HEADERS:
        shutil.copy2(RUNTIME / name, tmp / name)
    (tmp / "main.c").write_text(program(all_cases))
    write_board_files(target, tmp, ["main.c", *SOURCES])
    return tmp


def check(outputs: dict, all_cases: list[dict]) -> None:
    assert list(outputs["mismatches"]) == [0] * len(all_cases)
    for i, c in enumerate(all_cases):
        np.testing.assert_array_equal(outputs[f"fast_{i}"], c["y"].reshape(-1), err_msg=f"case {i} ({c['kind']})")
        if c["kind"] in ("conv", "pw", "c3"):
            np.testing.assert_array_equal(outputs[f"fast_s_{i}"], c["y"].reshape(-1), err_msg=f"case {i} im2col")
        if f"fast_p_{i}" in outputs:
            np.testing.assert_array_equal(outputs[f"fast_p_{i}"], c["y"].reshape(-1), err_msg=f"case {i} packed 3x3")
        if _pointwise(c):
            np.testing.assert_array_equal(outputs[f"fast_pw_{i}"], c["y"].reshape(-1), err_msg=f"case {i} 4x2 tiles")
            np.testing.assert_array_equal(outputs[f"fast_pws_{i}"], c["y"].reshape(-1),
                                          err_msg=f"case {i} 4x2 tiles, scratch")


@pytest.fixture(scope="module")
def random_cases():
    return cases()


def test_cases_cover_the_forms(random_cases):
    """The random cases really exercise what the kernels specialise (the test can only
    catch what it runs)."""
    convs = [c for c in random_cases if c["kind"] not in ("fc", "bmm")]
    bmm = [c for c in random_cases if c["kind"] == "bmm"]
    assert {c["x"].shape[1] % 2 for c in bmm} == {0, 1} and {c["x"].shape[2] % 2 for c in bmm} == {0, 1}
    assert {c["w"].shape[2] % 4 for c in bmm} == {0, 1, 2, 3} and max(c["x"].shape[2] for c in bmm) == 512
    assert any(c["p"].input_offset and c["p"].filter_offset for c in bmm)
    assert {c["p"].stride for c in convs} >= {(1, 1), (2, 2), (1, 2), (2, 1)}
    assert any(c["p"].dilation != (1, 1) for c in convs)
    assert any(c["w"].shape[1] % 2 == 1 and c["w"].shape[1] > 1 for c in convs)
    c3 = [c for c in convs if c["kind"] == "c3"]
    assert {c["p"].stride for c in c3} >= {(1, 1), (2, 2), (1, 2), (2, 1)}
    assert {c["w"].shape[1] % 2 for c in c3} == {0, 1} and {c["w"].shape[0] % 4 for c in c3} == {0, 1, 2, 3}
    assert {c["x"].shape[3] for c in c3} >= set(range(1, 10))
    assert {c["hw_out"][1] for c in c3} >= set(range(1, 8))
    assert {c["p"].pads[1] for c in c3} == {0, 1, 2} and any(c["hw_out"][1] % 2 for c in c3)
    assert {c["w"].shape[2] for c in random_cases if c["kind"] == "dw"} >= {3, 5, 7}
    assert any(c["kind"] == "dw" and c["w"].shape[3] == 3 and c["p"].stride[1] == 1 for c in random_cases)
    dws = [c for c in random_cases if c["kind"] == "dw"]
    assert {c["x"].shape[3] for c in dws} >= {1, 2, 3, 5}  # narrow planes
    assert any(c["x"].shape[2:] == (25, 5) for c in dws)  # KWS
    assert any(c["hw_out"][1] > 128 for c in dws)  # more than one run per row
    assert any(c["x"].shape[3] + 2 * c["w"].shape[3] > 128 for c in dws)  # wider than the row ring
    assert any(c["w"].shape[0] > c["x"].shape[1] for c in dws)  # multiplier > 1
    assert any(int(c["p"].shifts.max()) >= 0 for c in dws) and any(int(c["p"].shifts.min()) < 0 for c in dws)
    assert any(int(c["p"].shifts.min()) == -31 for c in random_cases)
    assert any(c["p"].input_offset == 128 for c in random_cases)
    assert any(c["p"].input_offset == -127 for c in random_cases)
    ys = np.concatenate([c["y"].reshape(-1) for c in random_cases])
    assert (ys == 127).any() and (ys == -128).any() and len(np.unique(ys)) > 200  # saturation, and more
    assert any(np.abs(c["bias"].astype(np.int64)).max() >= 1 << 30 for c in random_cases)
    fcs = [c["w"].shape for c in random_cases if c["kind"] == "fc"]
    assert {k % 16 // 4 for _, k in fcs if k >= 16} == {0, 1, 2, 3} and {k % 4 for _, k in fcs} == {0, 1, 2, 3}
    assert {n % 4 for n, _ in fcs if n >= 4} == {0, 1, 2, 3}
    pw = [c for c in random_cases if _pointwise(c)]
    assert {c["x"].shape[2] * c["x"].shape[3] for c in pw} >= {2, 3, 5, 125}
    assert any(c["x"].shape[1] % 2 == 1 for c in pw) and any(c["w"].shape[0] % 4 != 0 for c in pw)
    assert any(c["x"].shape[1] % 4 == 2 for c in pw) and any(c["x"].shape[0] == 2 for c in pw)
    # its requantization forms: the folded 64-bit sum (every shift < 0) or not, the int8 clamp or another
    assert any((c["p"].shifts < 0).all() for c in pw) and any((c["p"].shifts >= 0).any() for c in pw)
    full = [(c["p"].act_min, c["p"].act_max) == (-128, 127) for c in pw]
    assert any(full) and not all(full)
    # the scratch form (c_in >= 128, c_out >= 8) with each requantization form
    col = [c for c in pw if c["x"].shape[1] >= 128 and c["w"].shape[0] >= 8]
    assert any((c["p"].shifts < 0).all() for c in col) and any((c["p"].shifts >= 0).any() for c in col)


def test_pointwise_weights_layout():
    w = np.arange(5 * 3, dtype=np.int8).reshape(5, 3, 1, 1)  # w[o][c] = 3 o + c
    got = pointwise_weights(w).tolist()
    assert got == [0, 3, 1, 4, 6, 9, 7, 10,  # channels 0-3, inputs 0, 1
                   2, 5, 8, 11,              # channels 0-3, the odd last input 2
                   12, 13, 14]               # channel 4: its ONNX row
    assert sorted(got) == sorted(w.reshape(-1).tolist())  # a permutation: no extra flash


def test_folded_bias_wraps_like_the_int32_accumulator():
    w = np.full((2, 64), 127, np.int8)
    folded = folded_bias(w, np.array([2 ** 31 - 1, -5], np.int64), 128)
    assert folded.tolist() == [(2 ** 31 - 1 + 128 * 127 * 64) - 2 ** 32, -5 + 128 * 127 * 64]


@pytest.mark.c
@pytest.mark.skipif(not HAVE_HOST, reason="gcc or make missing")
def test_fast_kernels_equal_portable_on_the_host(tmp_path, random_cases):
    from onnx2mcu.simulator.run_c import build, run_host

    build(build_program(tmp_path, "host", random_cases), "host")
    result = run_host(tmp_path)
    assert result.exit_code == 0, result.stderr
    check(result.outputs(), random_cases)


@pytest.mark.c
@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_QEMU, reason="arm-none-eabi-gcc or qemu-system-arm missing")
def test_fast_kernels_equal_portable_under_qemu_cortex_m4(tmp_path, random_cases):
    from onnx2mcu.simulator.run_c import build, run_qemu

    elf = build(build_program(tmp_path, "mps2-an386", random_cases), "mps2-an386")
    # the DSP instructions are really there (not the plain C twins)
    disassembly = __import__("subprocess").run(["arm-none-eabi-objdump", "-d", str(tmp_path / "o2m_s8_conv_dsp.o")],
                                               capture_output=True, text=True).stdout
    assert "smlad" in disassembly and "sxtb16" in disassembly
    result = run_qemu(tmp_path, "mps2-an386", count_instructions=False, elf=elf)
    assert result.exit_code == 0, result.stderr
    check(result.outputs(), random_cases)


def _sanitizers_work() -> bool:
    import subprocess

    if not HAVE_HOST:
        return False
    probe = subprocess.run(["gcc", "-fsanitize=address,undefined", "-x", "c", "-", "-o", "/dev/null"],
                           input="int main(void){return 0;}", capture_output=True, text=True)
    return probe.returncode == 0


@pytest.mark.c
@pytest.mark.skipif(not _sanitizers_work(), reason="gcc with libasan/libubsan not installed")
def test_fast_kernels_clean_under_asan_and_ubsan(tmp_path, random_cases, monkeypatch):
    """The host twins under -fsanitize=address,undefined: no load leaves a tensor (the in-place
    forms read windows straight from the input), no signed overflow."""
    from onnx2mcu.simulator.run_c import EXTRA_CFLAGS_ENV, build, run_host

    monkeypatch.setenv(EXTRA_CFLAGS_ENV, "-fsanitize=address,undefined -fno-sanitize-recover=all -g")
    monkeypatch.setenv("ASAN_OPTIONS", "halt_on_error=1:detect_leaks=1:exitcode=86")
    monkeypatch.setenv("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1:exitcode=87")
    build(build_program(tmp_path, "host", random_cases), "host")
    result = run_host(tmp_path)
    assert result.exit_code == 0, result.stderr[-2000:]
    check(result.outputs(), random_cases)
