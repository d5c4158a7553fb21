"""Binary (XNOR) and adder (L1) kernels and models on an emulated Cortex-M4; writes benchmarks/binary.md.

    python benchmarks/binary_bench.py [--quick] [--out benchmarks/binary.md]

1. Instructions per MAC under QEMU mps2-an386 (Cortex-M4F, exact counts from
   the TCG plugin, between o2m_mark_begin/o2m_mark_end) for GEMMs at BERT-tiny
   sizes (S=128 rows; 128x128, 128x512, 512x128 weights) and a 3x3 conv layer:
   float32, binary, adder float32 and adder int8, each as our tiled kernel,
   the same kernel without tiling (O2M_*_NO_TILING, or a 1x1 pointer loop for
   float32) and a naive indexed loop (binary: __builtin_popcount per word,
   which is a libgcc call on Cortex-M4).  A binary MAC is one bit of the
   XNOR-popcount.  Every variant's output is checked against the op
   library's reference.
2. Weight bytes per layer (float32 vs packed bits + per-channel table).
3. End to end: a BiBERT-style binarized BERT-tiny (every encoder linear layer
   binary) and an adder ResNet-8 (CIFAR shape), exported from PyTorch with
   onnx2mcu.layers, against their float versions: flash, RAM, instructions
   per inference.  The BERTs use a 2048-token vocabulary so that the float
   version fits the board's 4 MiB flash (the full 30522-token embedding is
   MCUBERT's business, graph_opt/embedding.py).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from onnx2mcu.codegen.board_project import write_board_files  # noqa: E402
from onnx2mcu.ir import Node  # noqa: E402
from onnx2mcu.ops import lookup  # noqa: E402
from onnx2mcu.ops.binary import pack_bits  # noqa: E402
from onnx2mcu.runtime_c import __file__ as _rt  # noqa: E402
from onnx2mcu.simulator.run_c import build, run_qemu  # noqa: E402

RUNTIME = Path(_rt).resolve().parent
BOARD = "mps2-an386"

NAIVE_C = r"""
#include <math.h>
#include <stdlib.h>
/* Naive loops: plain indexing, no tiling, no pointer walking. */
static void naive_gemm_f32(int M, int N, int K, const float *x, const float *w, float *y)
{ /* x [M,K], w [K,N] */
    int i, j, k;
    for (i = 0; i < M; ++i)
        for (j = 0; j < N; ++j) {
            float s = 0.0f;
            for (k = 0; k < K; ++k) s += x[i * K + k] * w[k * N + j];
            y[i * N + j] = s;
        }
}
static void untiled_gemm_f32(int M, int N, int K, const float *x, const float *w, float *y)
{ /* one output at a time, pointers walking */
    int i, j, k;
    for (i = 0; i < M; ++i)
        for (j = 0; j < N; ++j) {
            const float *a = x + i * K, *b = w + j;
            float s = 0.0f;
            for (k = 0; k < K; ++k, b += N) s += *a++ * *b;
            y[i * N + j] = s;
        }
}
static void naive_binary_gemm(int M, int N, int K, const uint32_t *x, const uint32_t *w,
                              const float *aff, float *y)
{
    const int W = (K + 31) / 32;
    int i, j, t;
    for (i = 0; i < M; ++i)
        for (j = 0; j < N; ++j) {
            int pop = 0;
            for (t = 0; t < W; ++t) pop += __builtin_popcount(x[i * W + t] ^ w[j * W + t]);
            y[i * N + j] = (float)(K - 2 * pop) * aff[2 * j] + aff[2 * j + 1];
        }
}
static void naive_adder_f32(int M, int N, int K, const float *x, const float *w, float *y)
{
    int i, j, k;
    for (i = 0; i < M; ++i)
        for (j = 0; j < N; ++j) {
            float s = 0.0f;
            for (k = 0; k < K; ++k) s += fabsf(x[i * K + k] - w[j * K + k]);
            y[i * N + j] = -s;
        }
}
static void naive_adder_i8(int M, int N, int K, const int8_t *x, const int8_t *w, float *y)
{
    int i, j, k;
    for (i = 0; i < M; ++i)
        for (j = 0; j < N; ++j) {
            int32_t s = 0;
            for (k = 0; k < K; ++k) s += abs((int)x[i * K + k] - (int)w[j * K + k]);
            y[i * N + j] = (float)(-s);
        }
}
/* direct conv loops, NCHW, zero padding; binary input channel-packed NHWC */
static void naive_conv_f32(const o2m_conv2d_params *p, const float *x, const float *w, float *y)
{
    int m, oh, ow, c, i, j;
    for (m = 0; m < p->c_out; ++m)
        for (oh = 0; oh < p->h_out; ++oh)
            for (ow = 0; ow < p->w_out; ++ow) {
                float s = 0.0f;
                for (c = 0; c < p->c_in; ++c)
                    for (i = 0; i < p->k_h; ++i)
                        for (j = 0; j < p->k_w; ++j) {
                            int ih = oh * p->stride_h - p->pad_top + i, iw = ow * p->stride_w - p->pad_left + j;
                            if (ih >= 0 && ih < p->h_in && iw >= 0 && iw < p->w_in)
                                s += x[(c * p->h_in + ih) * p->w_in + iw] * w[((m * p->c_in + c) * p->k_h + i) * p->k_w + j];
                        }
                y[(m * p->h_out + oh) * p->w_out + ow] = s;
            }
}
static void naive_binary_conv(const o2m_binary_conv_params *p, const uint32_t *x, const uint32_t *w,
                              const float *aff, float *y)
{
    const int cw = (p->c_in + 31) / 32;
    int m, oh, ow, i, j, t;
    for (m = 0; m < p->c_out; ++m)
        for (oh = 0; oh < p->h_out; ++oh)
            for (ow = 0; ow < p->w_out; ++ow) {
                int pop = 0, taps = 0;
                for (i = 0; i < p->k_h; ++i)
                    for (j = 0; j < p->k_w; ++j) {
                        int ih = oh * p->stride_h - p->pad_top + i, iw = ow * p->stride_w - p->pad_left + j;
                        if (ih < 0 || ih >= p->h_in || iw < 0 || iw >= p->w_in) continue;
                        ++taps;
                        for (t = 0; t < cw; ++t)
                            pop += __builtin_popcount(x[(ih * p->w_in + iw) * cw + t] ^ w[((m * p->k_h + i) * p->k_w + j) * cw + t]);
                    }
                y[(m * p->h_out + oh) * p->w_out + ow] = (float)(taps * p->c_in - 2 * pop) * aff[2 * m] + aff[2 * m + 1];
            }
}
static void naive_adder_conv_f32(const o2m_adder_conv_params *p, const float *x, const float *w, float *y)
{
    int m, oh, ow, c, i, j;
    for (m = 0; m < p->c_out; ++m)
        for (oh = 0; oh < p->h_out; ++oh)
            for (ow = 0; ow < p->w_out; ++ow) {
                float s = 0.0f;
                for (c = 0; c < p->c_in; ++c)
                    for (i = 0; i < p->k_h; ++i)
                        for (j = 0; j < p->k_w; ++j) {
                            int ih = oh * p->stride_h - p->pad_top + i, iw = ow * p->stride_w - p->pad_left + j;
                            float v = (ih >= 0 && ih < p->h_in && iw >= 0 && iw < p->w_in) ? x[(c * p->h_in + ih) * p->w_in + iw] : 0.0f;
                            s += fabsf(v - w[((m * p->c_in + c) * p->k_h + i) * p->k_w + j]);
                        }
                y[(m * p->h_out + oh) * p->w_out + ow] = -s;
            }
}
static void naive_adder_conv_i8(const o2m_adder_conv_params *p, const int8_t *x, const int8_t *w, float *y)
{
    int m, oh, ow, c, i, j;
    for (m = 0; m < p->c_out; ++m)
        for (oh = 0; oh < p->h_out; ++oh)
            for (ow = 0; ow < p->w_out; ++ow) {
                int32_t s = 0;
                for (c = 0; c < p->c_in; ++c)
                    for (i = 0; i < p->k_h; ++i)
                        for (j = 0; j < p->k_w; ++j) {
                            int ih = oh * p->stride_h - p->pad_top + i, iw = ow * p->stride_w - p->pad_left + j;
                            int v = (ih >= 0 && ih < p->h_in && iw >= 0 && iw < p->w_in) ? x[(c * p->h_in + ih) * p->w_in + iw] : p->pad;
                            s += abs(v - (int)w[((m * p->c_in + c) * p->k_h + i) * p->k_w + j]);
                        }
                y[(m * p->h_out + oh) * p->w_out + ow] = (float)(-s);
            }
}
"""


def c_array(name: str, values: np.ndarray, ctype: str, const: bool) -> str:
    flat = np.asarray(values).reshape(-1)
    if ctype == "float":
        items = [f"{float(v).hex()}f" for v in flat.astype(np.float64)]
    else:
        items = [str(int(v)) + ("u" if ctype.startswith("u") else "") for v in flat]
    lines = ",\n".join(",".join(items[i:i + 16]) for i in range(0, len(items), 16))
    return f"static {'const ' if const else ''}{ctype} {name}[{flat.size}] = {{\n{lines}}};\n"


def measure(work: Path, tag: str, decls: str, call: str, out_count: int, sources: list[str],
            defines: tuple[str, ...] = ()) -> tuple[int, np.ndarray]:
    """Instructions between the marks around `call`, and the float output y."""
    d = work / tag
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for src in sources:
        shutil.copy(RUNTIME / src, d / src)
    for header in RUNTIME.glob("*.h"):
        shutil.copy(header, d / header.name)
    main = ('#include <stdint.h>\n#include <stddef.h>\n#include "o2m_io.h"\n#include "o2m_kernels.h"\n'
            + NAIVE_C + decls + "int main(void)\n{\n    o2m_mark_begin();\n    " + call
            + "\n    o2m_mark_end();\n" + f'    o2m_out_f32("y", y, {out_count});\n    o2m_done();\n'
            "    return 0;\n}\n")
    (d / "main.c").write_text(main)
    write_board_files(BOARD, d, ["main.c", *sources], extra_cflags=["-Wno-unused-function", "-Wno-unused-const-variable", "-Wno-unused-variable", *defines])
    build(d, BOARD)
    result = run_qemu(d, BOARD, count_instructions=True, timeout=600)
    assert result.exit_code == 0, result.stderr
    return int(result.region_instructions), result.outputs()["y"]


def _node(op, **attrs):
    return Node(op, op, ["x", "w", "p"], ["y"], attrs, "onnx2mcu")


def gemm_rows(work: Path, s: int, k: int, n: int, rng) -> list[dict]:
    macs = s * k * n
    rows = []
    xf = rng.standard_normal((s, k)).astype(np.float32)
    wf = rng.standard_normal((k, n)).astype(np.float32)
    base = c_array("x", xf, "float", False) + c_array("w", wf, "float", True) + f"static float y[{s * n}];\n"
    gp = f"static const o2m_gemm_params gp = {{{s}, {n}, {k}, 0, 0, 1.0f, 0.0f, 0, 0, {{0, 0.0f, 0.0f}}}};\n"
    ref = (xf.astype(np.float64) @ wf.astype(np.float64)).astype(np.float32)
    for variant, call, srcs in [("tiled (ours)", "o2m_gemm_f32(&gp, x, w, NULL, y);", ["o2m_linalg.c"]),
                                ("untiled", f"untiled_gemm_f32({s}, {n}, {k}, x, w, y);", []),
                                ("naive", f"naive_gemm_f32({s}, {n}, {k}, x, w, y);", [])]:
        count, y = measure(work, f"f32_{k}_{n}_{len(rows)}", base + gp, call, s * n, srcs)
        np.testing.assert_allclose(y.reshape(s, n), ref, rtol=1e-3, atol=1e-3)
        rows.append(dict(kind="float32", variant=variant, count=count, macs=macs))
    # binary
    xb = pack_bits(rng.random((s, k)) < 0.5)
    wb = pack_bits(rng.random((n, k)) < 0.5)
    aff = np.stack([rng.random(n) + 0.5, rng.standard_normal(n)], 1).astype(np.float32)
    base = (c_array("x", xb, "uint32_t", False) + c_array("w", wb, "uint32_t", True)
            + c_array("aff", aff, "float", True) + f"static float y[{s * n}];\n"
            + f"static const o2m_binary_gemm_params bp = {{{s}, {n}, {k}}};\n")
    ref = lookup("XnorGemm", "onnx2mcu").reference(_node("XnorGemm", k=k, output="float"), [xb, wb, aff])[0]
    for variant, call, srcs, defs in [
            ("tiled (ours)", "o2m_binary_gemm_f32(&bp, x, w, aff, y);", ["o2m_binary.c"], ()),
            ("untiled", "o2m_binary_gemm_f32(&bp, x, w, aff, y);", ["o2m_binary.c"], ("-DO2M_BINARY_NO_TILING",)),
            ("naive", f"naive_binary_gemm({s}, {n}, {k}, x, w, aff, y);", [], ())]:
        count, y = measure(work, f"bin_{k}_{n}_{len(rows)}", base, call, s * n, srcs, defs)
        np.testing.assert_array_equal(y.reshape(s, n).view(np.uint32), ref.view(np.uint32))
        rows.append(dict(kind="binary", variant=variant, count=count, macs=macs))
    # adder float32 and int8
    adder = lookup("AdderMatMul", "onnx2mcu")
    for dtype, ctype, suffix in [(np.float32, "float", "f32"), (np.int8, "int8_t", "s8")]:
        if dtype == np.int8:
            xa, wa = (rng.integers(-128, 128, sh).astype(np.int8) for sh in ((s, k), (n, k)))
        else:
            xa, wa = (rng.standard_normal(sh).astype(np.float32) for sh in ((s, k), (n, k)))
        base = (c_array("x", xa, ctype, False) + c_array("w", wa, ctype, True) + f"static float y[{s * n}];\n"
                + f"static const o2m_adder_gemm_params ap = {{{s}, {n}, {k}}};\n")
        ref = adder.reference(Node("a", "AdderMatMul", ["x", "w"], ["y"], {}, "onnx2mcu"), [xa, wa])[0]
        for variant, call, srcs, defs in [
                ("tiled (ours)", f"o2m_adder_gemm_{suffix}(&ap, x, w, NULL, NULL, y);", ["o2m_adder.c"], ()),
                ("untiled", f"o2m_adder_gemm_{suffix}(&ap, x, w, NULL, NULL, y);", ["o2m_adder.c"],
                 ("-DO2M_ADDER_NO_TILING",)),
                ("naive", f"naive_adder_{suffix}({s}, {n}, {k}, x, w, y);", [], ())]:
            count, y = measure(work, f"add{suffix}_{k}_{n}_{len(rows)}", base, call, s * n, srcs, defs)
            np.testing.assert_array_equal(y.reshape(s, n).view(np.uint32), ref.view(np.uint32))
            rows.append(dict(kind=f"adder {'int8' if dtype == np.int8 else 'float32'}", variant=variant,
                             count=count, macs=macs))
    for row in rows:
        row["shape"] = f"{s}x{k} . {k}x{n}"
    return rows


def conv_rows(work: Path, c: int, h: int, m: int, rng) -> list[dict]:
    """3x3 conv, stride 1, pad 1, [1, c, h, h] -> [1, m, h, h]."""
    k = 3
    macs = m * h * h * c * k * k
    rows = []
    x = rng.standard_normal((1, c, h, h)).astype(np.float32)
    w = rng.standard_normal((m, c, k, k)).astype(np.float32)
    geo = f"1, {c}, {h}, {h}, {m}, {h}, {h}, 3, 3, 1, 1, 1, 1, 1, 1"
    base = (c_array("x", x, "float", False) + c_array("w", w, "float", True) + f"static float y[{m * h * h}];\n"
            + f"static const o2m_conv2d_params cp = {{{geo}, 1, {{0, 0.0f, 0.0f}}}};\n")
    conv_attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1], "dilations": [1, 1]}
    from onnx2mcu.ops.conv import _conv
    ref = _conv(Node("c", "Conv", ["x", "w"], ["y"], conv_attrs), [x, w])[0]
    for variant, call, srcs in [("tiled (ours)", "o2m_conv2d_f32(&cp, x, w, NULL, y);", ["o2m_conv.c"]),
                                ("naive", "naive_conv_f32(&cp, x, w, y);", [])]:
        count, y = measure(work, f"cf32_{len(rows)}", base, call, m * h * h, srcs)
        np.testing.assert_allclose(y.reshape(ref.shape), ref, rtol=1e-3, atol=1e-3)
        rows.append(dict(kind="float32", variant=variant, count=count, macs=macs))
    xb = pack_bits(rng.random((1, h, h, c)) < 0.5)
    wb = pack_bits(rng.random((m, k, k, c)) < 0.5)
    aff = np.stack([rng.random(m) + 0.5, rng.standard_normal(m)], 1).astype(np.float32)
    base = (c_array("x", xb, "uint32_t", False) + c_array("w", wb, "uint32_t", True)
            + c_array("aff", aff, "float", True) + f"static float y[{m * h * h}];\n"
            + f"static const o2m_binary_conv_params bp = {{{geo}}};\n")
    ref = lookup("XnorConv", "onnx2mcu").reference(_node("XnorConv", channels=c, output="float", **conv_attrs),
                                                   [xb, wb, aff])[0]
    for variant, call, srcs, defs in [
            ("tiled (ours)", "o2m_binary_conv_f32(&bp, x, w, aff, y);", ["o2m_binary.c"], ()),
            ("untiled", "o2m_binary_conv_f32(&bp, x, w, aff, y);", ["o2m_binary.c"], ("-DO2M_BINARY_NO_TILING",)),
            ("naive", "naive_binary_conv(&bp, x, w, aff, y);", [], ())]:
        count, y = measure(work, f"cbin_{len(rows)}", base, call, m * h * h, srcs, defs)
        np.testing.assert_array_equal(y.view(np.uint32), ref.reshape(-1).view(np.uint32))
        rows.append(dict(kind="binary", variant=variant, count=count, macs=macs))
    adder = lookup("AdderConv", "onnx2mcu")
    for dtype, ctype, suffix in [(np.float32, "float", "f32"), (np.int8, "int8_t", "s8")]:
        if dtype == np.int8:
            xa = rng.integers(-128, 128, (1, c, h, h)).astype(np.int8)
            wa = rng.integers(-128, 128, (m, c, k, k)).astype(np.int8)
        else:
            xa, wa = x, w
        base = (c_array("x", xa, ctype, False) + c_array("w", wa, ctype, True) + f"static float y[{m * h * h}];\n"
                + f"static {ctype} scratch[{2 * c * k * k}];\n"
                + f"static const o2m_adder_conv_params ap = {{{geo}, 0}};\n")
        ref = adder.reference(Node("a", "AdderConv", ["x", "w"], ["y"], conv_attrs, "onnx2mcu"), [xa, wa])[0]
        for variant, call, srcs, defs in [
                ("tiled (ours)", f"o2m_adder_conv_{suffix}(&ap, x, w, NULL, NULL, scratch, y);", ["o2m_adder.c"], ()),
                ("untiled", f"o2m_adder_conv_{suffix}(&ap, x, w, NULL, NULL, scratch, y);", ["o2m_adder.c"],
                 ("-DO2M_ADDER_NO_TILING",)),
                ("naive", f"naive_adder_conv_{suffix}(&ap, x, w, y);", [], ())]:
            count, y = measure(work, f"cadd{suffix}_{len(rows)}", base, call, m * h * h, srcs, defs)
            np.testing.assert_array_equal(y.view(np.uint32), ref.reshape(-1).view(np.uint32))
            rows.append(dict(kind=f"adder {'int8' if dtype == np.int8 else 'float32'}", variant=variant,
                             count=count, macs=macs))
    for row in rows:
        row["shape"] = f"3x3 conv {c}x{h}x{h} -> {m}x{h}x{h}"
    return rows


# ----------------------------------------------------------------- end to end
def bert_pair(seq: int, vocab: int):
    import torch
    from transformers import BertConfig, BertModel

    from onnx2mcu import layers

    def make(binary: bool):
        torch.manual_seed(0)
        config = BertConfig(vocab_size=vocab, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=512, max_position_embeddings=seq)
        bert = BertModel(config, add_pooling_layer=False).eval()
        if binary:
            layers.binarize_linears(bert.encoder)

        class Wrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.bert = bert

            def forward(self, input_ids):
                return self.bert(input_ids=input_ids, return_dict=True).last_hidden_state

        return Wrapper().eval()

    ids = torch.randint(0, vocab, (1, seq), generator=torch.Generator().manual_seed(0))
    return make(False), make(True), (ids,), ["input_ids"]


def resnet_pair():
    import torch

    from onnx2mcu import layers

    torch.manual_seed(0)
    fp = layers.randomize_batchnorms(layers.ResNet8(adder=False)).eval()
    torch.manual_seed(0)
    ad = layers.randomize_batchnorms(layers.ResNet8(adder=True)).eval()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return fp, ad, (x,), ["x"]


def e2e_row(work: Path, name: str, model, args, input_names) -> dict:
    from onnx2mcu import layers
    from onnx2mcu.build import compile_model
    from onnx2mcu.runner import run_project_dir

    proto = layers.export(model, args, None, form="standard", input_names=input_names)
    inputs = {n: a.numpy() for n, a in zip(input_names, args)}
    start = time.time()
    folder = work / "".join(ch if ch.isalnum() else "_" for ch in name)
    res = compile_model(proto, folder, board=BOARD, inputs=inputs)
    run = run_project_dir(str(folder), "qemu")
    return dict(model=name, flash=run["flash_bytes"], ram=run["ram_bytes"], weights=res.report["weights_bytes"],
                arena=res.report["arena_bytes"], instructions=run["inference_instructions"],
                max_rel_err=run["max_rel_err"], seconds=time.time() - start)


# ----------------------------------------------------------------- report
def fmt(n: float) -> str:
    return f"{n:,.0f}"


def write_markdown(path: Path, gemm: list[dict], conv: list[dict], e2e: list[dict], weights: list[dict],
                   quick: bool) -> str:
    lines = ["# Binary (XNOR-popcount) and adder (L1) kernels on Cortex-M4", "",
             "Generated by `python benchmarks/binary_bench.py`" + (" --quick" if quick else "")
             + "; do not edit by hand.",
             "Instruction counts are exact (QEMU 7.2 `mps2-an386`, Cortex-M4F, TCG instruction-counting plugin,",
             "code between `o2m_mark_begin`/`o2m_mark_end`), built with arm-none-eabi-gcc 12 "
             "`-O2 -mcpu=cortex-m4 -mfloat-abi=hard`.",
             "A binary MAC is one bit of the XNOR-popcount; an adder MAC is one |x - w| + accumulate.",
             "Every kernel's output was checked against the op library's reference (bit-exact for binary",
             "and adder, float tolerance for float32).", ""]

    def table(rows: list[dict], title: str) -> None:
        lines.append(f"## {title}")
        lines.append("")
        lines.append("| shape | kernel | variant | instructions | instr / MAC | vs float32 (ours) |")
        lines.append("|---|---|---|---:|---:|---:|")
        floats = {r["shape"]: r["count"] / r["macs"] for r in rows
                  if r["kind"] == "float32" and r["variant"] == "tiled (ours)"}
        for r in rows:
            ipm = r["count"] / r["macs"]
            lines.append(f"| {r['shape']} | {r['kind']} | {r['variant']} | {fmt(r['count'])} | {ipm:.3f} | "
                         f"{floats[r['shape']] / ipm:.1f}x |")
        lines.append("")

    table(gemm, "GEMM at BERT-tiny sizes (S = 128 rows)")
    table(conv, "3x3 convolution layer (stride 1, padding 1)")
    lines += ["## Weight bytes per layer", "",
              "| layer (K x N) | float32 bytes | binary bytes (bits + [N, 2] float table) | ratio | "
              "bits alone |", "|---|---:|---:|---:|---:|"]
    for w in weights:
        lines.append(f"| {w['layer']} | {fmt(w['float'])} | {fmt(w['binary'])} | "
                     f"{w['float'] / w['binary']:.1f}x | {w['float'] / w['bits']:.0f}x |")
    lines.append("")
    if e2e:
        lines += ["## End to end (QEMU mps2-an386, one inference)", "",
                  "| model | flash bytes | RAM bytes | weights bytes | arena bytes | instructions | "
                  "max rel. err vs onnxruntime |", "|---|---:|---:|---:|---:|---:|---:|"]
        for r in e2e:
            lines.append(f"| {r['model']} | {fmt(r['flash'])} | {fmt(r['ram'])} | {fmt(r['weights'])} | "
                         f"{fmt(r['arena'])} | {fmt(r['instructions'])} | {r['max_rel_err']:.2g} |")
        lines += ["", "Binarized models are discontinuous (sign): float differences of one ulp in an",
                  "activation next to 0 (e.g. GELU's erf near -1) flip bits, so their outputs are",
                  "compared with the simulator (bit-exact kernels) rather than with onnxruntime; the",
                  "error column shows that distance for information.", ""]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "binary.md"))
    parser.add_argument("--quick", action="store_true", help="one GEMM size, no end-to-end models")
    parser.add_argument("--work", default=None, help="build folder (default: a temporary one)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(0)
    work = Path(args.work or tempfile.mkdtemp(prefix="o2m-binbench-"))
    sizes = [(128, 128)] if args.quick else [(128, 128), (128, 512), (512, 128)]
    gemm = []
    for k, n in sizes:
        gemm += gemm_rows(work, 128, k, n, rng)
        print(f"gemm {k}x{n} done", flush=True)
    conv = conv_rows(work, 32 if args.quick else 64, 8 if args.quick else 16, 32 if args.quick else 64, rng)
    print("conv done", flush=True)
    weights = []
    for k, n in [(128, 128), (128, 512), (512, 128)]:
        bits = n * ((k + 31) // 32) * 4
        weights.append(dict(layer=f"{k} x {n}", float=4 * k * n, bits=bits, binary=bits + 8 * n))
    e2e = []
    if not args.quick:
        fp, bn, bargs, bnames = bert_pair(128, 2048)
        e2e.append(e2e_row(work, "BERT-tiny float32 (S=128, vocab 2048)", fp, bargs, bnames))
        e2e.append(e2e_row(work, "BERT-tiny binarized encoder (S=128, vocab 2048)", bn, bargs, bnames))
        fr, ar, rargs, rnames = resnet_pair()
        e2e.append(e2e_row(work, "ResNet-8 float32", fr, rargs, rnames))
        e2e.append(e2e_row(work, "ResNet-8 adder", ar, rargs, rnames))
    print(write_markdown(Path(args.out), gemm, conv, e2e, weights, args.quick))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
