"""The int8 C API of model.h (issue 10, item 5; codegen/templates/model.h.j2).

A firmware main, compiled as C99 by gcc and as C++11 by g++ against `--format library`,
prints what model.h says and does; the test compares it with what the ONNX model says
(read here with onnx) and with numpy:

* <PREFIX>_INPUTn/_OUTPUTn _DTYPE (defined names: API 1 expanded int8's to an undefined
  MODEL_DTYPE_S8), _SHAPE, _QUANT_AXIS and _SCALE/_ZERO_POINT (per tensor) or _SCALES/
  _ZERO_POINTS (per axis) equal the model's QuantizeLinear/DequantizeLinear parameters.
* <prefix>_quantize_s8/_u8 round like TFLite's QUANTIZE (std::round of x / scale: ties away
  from zero; then the zero point, saturated), checked on ties, the floats next to them,
  saturation at both ends, infinities and NaN; _dequantize_s8/_u8 on every integer.
* quantize_input0 -> invoke -> dequantize_output0: the bytes the model got are numpy's
  quantization of the float input, and the floats it gives back are the simulator's
  outputs dequantized, bit for bit (ad01_int8 from ../shared, small int8/uint8 models).
* A float-in/float-out model that is quantized inside keeps a float API: its Q/DQ run in
  model.c, model.h has no quantization macros or helpers.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx2mcu.codegen.generate import C_API_DTYPES
from onnx2mcu.pipeline import Options, run
from onnx2mcu.simulator import simulate
from test_int8_models import MODELS, island_model, model_path

STRICT_C = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-ffp-contract=off"]
STRICT_CXX = ["-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-ffp-contract=off"]
HAVE_HOST = all(shutil.which(t) for t in ("gcc", "g++"))
needs_host = pytest.mark.skipif(not HAVE_HOST, reason="gcc / g++ not installed")
LANGS = ("c", "c++")
RANGE = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}

# A firmware main for a model with one quantized input and one quantized output, valid C99
# and C++11.  MODEL_/model_ become the prefix; cases.h (written by the test) holds the floats
# as bit patterns.  Output: one tagged line per fact.
MAIN = r"""
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include "model.h"
#include "cases.h"

static float as_float(uint32_t b) { float f; memcpy(&f, &b, sizeof f); return f; }
static unsigned long bits_of(float f) { uint32_t b; memcpy(&b, &f, sizeof b); return (unsigned long)b; }

static void print_quant(const char *tag, int axis, const float *scale, const int *zero_point, unsigned n)
{
    unsigned i;
    printf("%s %d", tag, axis);
    for (i = 0; i < n; ++i) {
        printf(" %08lx:%d", bits_of(scale[i]), zero_point[i]);
    }
    printf("\n");
}

static float x[MODEL_INPUT0_SIZE];
static float y[MODEL_OUTPUT0_SIZE];
static model_ctx ctx;

int main(void)
{
    static const int in_shape[] = MODEL_INPUT0_SHAPE;
    static const int out_shape[] = MODEL_OUTPUT0_SHAPE;
#if MODEL_INPUT0_QUANT_AXIS < 0
    static const float in_scale[] = { MODEL_INPUT0_SCALE };
    static const int in_zero[] = { MODEL_INPUT0_ZERO_POINT };
#else
    static const float in_scale[] = MODEL_INPUT0_SCALES;
    static const int in_zero[] = MODEL_INPUT0_ZERO_POINTS;
#endif
#if MODEL_OUTPUT0_QUANT_AXIS < 0
    static const float out_scale[] = { MODEL_OUTPUT0_SCALE };
    static const int out_zero[] = { MODEL_OUTPUT0_ZERO_POINT };
#else
    static const float out_scale[] = MODEL_OUTPUT0_SCALES;
    static const int out_zero[] = MODEL_OUTPUT0_ZERO_POINTS;
#endif
    const MODEL_INPUT0_TYPE *xq;
    const MODEL_OUTPUT0_TYPE *yq;
    unsigned i, p;
    int q;

    printf("api %d\n", MODEL_API_VERSION);
    printf("dtype %d %d\n", MODEL_INPUT0_DTYPE, MODEL_OUTPUT0_DTYPE);
    printf("in_shape");
    for (i = 0; i < MODEL_INPUT0_NDIM; ++i) printf(" %d", in_shape[i]);
    printf("\nout_shape");
    for (i = 0; i < MODEL_OUTPUT0_NDIM; ++i) printf(" %d", out_shape[i]);
    printf("\n");
    print_quant("in_quant", MODEL_INPUT0_QUANT_AXIS, in_scale, in_zero, sizeof in_scale / sizeof in_scale[0]);
    print_quant("out_quant", MODEL_OUTPUT0_QUANT_AXIS, out_scale, out_zero, sizeof out_scale / sizeof out_scale[0]);

    for (p = 0; p < N_PARAMS; ++p) {
        const float s = as_float(scale_bits[p]);
        printf("qs8");
        for (i = 0; i < N_X; ++i) printf(" %d", (int)model_quantize_s8(as_float(x_bits[i]), s, zero_s8[p]));
        printf("\nqu8");
        for (i = 0; i < N_X; ++i) printf(" %d", (int)model_quantize_u8(as_float(x_bits[i]), s, zero_u8[p]));
        printf("\nds8");
        for (q = -128; q < 128; ++q) printf(" %08lx", bits_of(model_dequantize_s8((int8_t)q, s, zero_s8[p])));
        printf("\ndu8");
        for (q = 0; q < 256; ++q) printf(" %08lx", bits_of(model_dequantize_u8((uint8_t)q, s, zero_u8[p])));
        printf("\n");
    }

    if (model_init(&ctx, NULL, 0) != MODEL_OK) return 3;
    for (i = 0; i < MODEL_INPUT0_SIZE; ++i) x[i] = as_float(input_bits[i]);
    model_quantize_input0(x, (MODEL_INPUT0_TYPE *)model_input(&ctx, 0), MODEL_INPUT0_SIZE);
    xq = (const MODEL_INPUT0_TYPE *)model_input(&ctx, 0);
    printf("xq");
    for (i = 0; i < MODEL_INPUT0_SIZE; ++i) printf(" %d", (int)xq[i]);
    printf("\n");
    if (model_invoke(&ctx) != MODEL_OK) return 4;
    yq = (const MODEL_OUTPUT0_TYPE *)model_output(&ctx, 0);
    printf("yq");
    for (i = 0; i < MODEL_OUTPUT0_SIZE; ++i) printf(" %d", (int)yq[i]);
    printf("\n");
    model_dequantize_output0(yq, y, MODEL_OUTPUT0_SIZE);
    printf("y");
    for (i = 0; i < MODEL_OUTPUT0_SIZE; ++i) printf(" %08lx", bits_of(y[i]));
    printf("\n");
    return 0;
}
"""

# (scale, int8 zero point, uint8 zero point) for the generic helpers
PARAMS = [(0.25, 0, 128), (0.25, -3, 0), (1.0 / 3.0, 127, 255), (0.39101523, -128, 89), (1e-3, 89, 7)]


# ----- numpy twins: TFLite's arithmetic, written from its definition ----------------------
def tflite_quantize(x: np.ndarray, scale: float, zero_point: int, lo: int, hi: int) -> np.ndarray:
    """TFLite QUANTIZE: std::round(x / scale) (the float32 division; the rounding is exact in
    float64) + zero point, saturated; NaN -> the zero point (the header's documented choice)."""
    with np.errstate(all="ignore"):
        v = (np.asarray(x, np.float32) / np.float32(scale)).astype(np.float64)
        r = np.sign(v) * np.floor(np.abs(v) + 0.5)
        r = np.clip(np.nan_to_num(r, nan=0.0), -2.0**40, 2.0**40)
    return np.clip(r + zero_point, lo, hi).astype(np.int64)


def tflite_dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """TFLite DEQUANTIZE: scale * (q - zero_point), one float32 rounding."""
    return (np.float32(scale) * (np.asarray(q).astype(np.float32) - np.float32(zero_point))).astype(np.float32)


def per_channel(values: np.ndarray, quant: dict, fn) -> np.ndarray:
    """fn(values[i], scale, zero point of element i's channel) over the flat tensor."""
    flat = np.asarray(values).reshape(-1)
    out = []
    for i, v in enumerate(flat):
        c = 0 if quant["axis"] < 0 else (i // quant["inner"]) % len(quant["scale"])
        out.append(fn(np.asarray([v]), quant["scale"][c], quant["zero"][c])[0])
    return np.asarray(out)


def test_round_twin_is_std_round():
    """The twin itself, on values whose std::round is known by hand (scale 1, zero point 0)."""
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, np.nextafter(np.float32(0.5), np.float32(0)),
                  np.nextafter(np.float32(1.5), np.float32(0)), 126.5, 127.5, -128.5, 300, -300,
                  np.inf, -np.inf, np.nan], np.float32)
    want = [1, 2, 3, -1, -3, 0, 1, 127, 127, -128, 127, -128, 127, -128, 0]
    assert tflite_quantize(x, 1.0, 0, -128, 127).tolist() == want
    assert tflite_quantize(x, 1.0, 0, 0, 255).tolist() == [1, 2, 3, 0, 0, 0, 1, 127, 128, 0, 255, 0, 255, 0, 0]


def edge_floats(rng) -> np.ndarray:
    """For every scale of PARAMS: floats whose x / scale is exactly k + 1/2 (|k| <= 300), their
    neighbours (one ulp either side), the saturation boundaries, infinities, NaN, random ones."""
    xs = []
    for scale, *_ in PARAMS:
        s = np.float32(scale)
        ties = 0
        for k in range(-300, 300):
            t = np.float64(k) + 0.5
            x0 = np.float32(t * float(s))
            near = [x0, np.nextafter(x0, np.float32(-np.inf)), np.nextafter(x0, np.float32(np.inf))]
            xs.extend(near)
            ties += any(float(np.float32(v) / s) == t for v in near)
        assert ties >= 500, (scale, ties)  # the ties really are in the set
    xs.extend([0.0, -0.0, 1e30, -1e30, np.inf, -np.inf, np.nan, 1e-40, -1e-40])
    xs.extend(rng.normal(0, 40, 400).astype(np.float32))
    return np.asarray(xs, np.float32)


# ----- building and running a firmware main ----------------------------------------------
def words(values: np.ndarray) -> str:
    return ", ".join(f"0x{int(w):08x}u" for w in np.asarray(values, np.float32).view(np.uint32)) or "0u"


def write_cases(path: Path, x: np.ndarray, model_input: np.ndarray) -> None:
    path.write_text(
        f"#define N_X {x.size}u\nstatic const uint32_t x_bits[] = {{ {words(x)} }};\n"
        f"#define N_PARAMS {len(PARAMS)}u\n"
        f"static const uint32_t scale_bits[] = {{ {words(np.array([p[0] for p in PARAMS]))} }};\n"
        f"static const int zero_s8[] = {{ {', '.join(str(p[1]) for p in PARAMS)} }};\n"
        f"static const int zero_u8[] = {{ {', '.join(str(p[2]) for p in PARAMS)} }};\n"
        f"static const uint32_t input_bits[] = {{ {words(model_input.reshape(-1))} }};\n")


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\nexit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def build_library(lib: Path, build: Path) -> list[Path]:
    """The library's sources, gcc -std=c99 (once for both mains), at -O0: the kernels' -O2
    builds are tested elsewhere and o2m_elementwise.c takes 5x longer; the header's helpers
    are compiled into main at -O2."""
    build.mkdir(parents=True, exist_ok=True)
    objs = []
    for src in sorted(lib.glob("*.c")):
        objs.append(build / (src.stem + ".o"))
        _run(["gcc", *STRICT_C, "-O0", "-c", src, "-o", objs[-1]])
    return objs


def build_and_run(lib: Path, objs: list[Path], main_text: str, prefix: str, build: Path, lang: str) -> str:
    """main as `lang` (c: gcc -std=c99, c++: g++ -std=c++11), linked with the library's
    objects; cases.h is in build's parent."""
    build.mkdir(parents=True, exist_ok=True)
    main = build / ("main.c" if lang == "c" else "main.cpp")
    main.write_text(main_text.replace('"model.h"', f'"{prefix}.h"').replace("MODEL_", prefix.upper() + "_")
                    .replace("model_", prefix + "_"))
    compiler, flags = ("gcc", STRICT_C) if lang == "c" else ("g++", STRICT_CXX)
    _run([compiler, *flags, f"-I{lib}", f"-I{build.parent}", "-c", main, "-o", build / "main.o"])
    _run([compiler, build / "main.o", *objs, "-lm", "-o", build / "app"])
    return _run([build / "app"]).stdout


def parse(stdout: str) -> dict[str, list[list[str]]]:
    rows: dict[str, list[list[str]]] = {}
    for line in stdout.splitlines():
        tag, *rest = line.split()
        rows.setdefault(tag, []).append(rest)
    return rows


def floats(hex_words: list[str]) -> np.ndarray:
    return np.array([int(w, 16) for w in hex_words], np.uint32).view(np.float32)


# ----- what the ONNX model says ----------------------------------------------------------
def onnx_io(path: Path) -> dict:
    """Shapes, dtypes and quantization of the single input and output, read with onnx: the
    parameters of the DequantizeLinear reading the input and the QuantizeLinear writing the
    output.  A free dimension is 1 (what `compile` binds it to without --input-shape)."""
    proto = onnx.load(str(path))
    graph = proto.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    (x,), (y,) = graph.input, graph.output

    def shape(info):
        return [d.dim_value if d.dim_value > 0 else 1 for d in info.type.tensor_type.shape.dim]

    def quant(node, rank):
        scale = inits[node.input[1]].astype(np.float32)
        zero = inits[node.input[2]]
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.ndim == 0 or scale.size == 1:
            return {"axis": -1, "scale": scale.reshape(-1), "zero": zero.reshape(-1), "inner": 1, "dtype": zero.dtype}
        axis %= rank
        return {"axis": axis, "scale": scale, "zero": np.broadcast_to(zero, scale.shape), "dtype": zero.dtype}

    dq = next(n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] == x.name)
    q = next(n for n in graph.node if n.op_type == "QuantizeLinear" and n.output[0] == y.name)
    io = {"x": x.name, "y": y.name, "x_shape": shape(x), "y_shape": shape(y),
          "x_type": x.type.tensor_type.elem_type, "y_type": y.type.tensor_type.elem_type,
          "xq": quant(dq, len(shape(x))), "yq": quant(q, len(shape(y)))}
    for key, dims in (("xq", io["x_shape"]), ("yq", io["y_shape"])):
        if io[key]["axis"] >= 0:
            io[key]["inner"] = int(np.prod(dims[io[key]["axis"] + 1:]))
    return io


ONNX_TO_SUFFIX = {TensorProto.INT8: "S8", TensorProto.UINT8: "U8", TensorProto.FLOAT: "F32"}


def check_api(path: Path, tmp: Path, prefix: str = "model", seed: int = 0) -> None:
    """Compile `path` as a library, run MAIN in C and C++, check everything it prints."""
    io = onnx_io(path)
    result = run(path, Options(output=tmp / "lib", format="library", prefix=prefix))
    graph, sched = result.graph, result.schedule
    assert list(graph.inputs) == [io["x"]] and list(graph.outputs) == [io["y"]]
    x_dtype, y_dtype = graph.tensors[io["x"]].dtype.numpy, graph.tensors[io["y"]].dtype.numpy
    assert x_dtype == io["xq"]["dtype"] and y_dtype == io["yq"]["dtype"]

    rng = np.random.default_rng(seed)
    edge = edge_floats(rng)
    # the model's input in floats: its real range, a little beyond both ends, ties of its scale
    lo, hi = RANGE[x_dtype]
    xq_ = io["xq"]
    real_lo = float(np.min(xq_["scale"] * (lo - xq_["zero"].astype(np.float64))))
    real_hi = float(np.max(xq_["scale"] * (hi - xq_["zero"].astype(np.float64))))
    size = int(np.prod(io["x_shape"]))
    x_float = rng.uniform(real_lo * 1.1, real_hi * 1.1, size).astype(np.float32)
    x_float[: size // 8] = ((rng.integers(lo, hi, size // 8) + 0.5) * float(xq_["scale"][0])).astype(np.float32)
    x_float[-2:] = (-1e3, 1e3)  # saturates on every channel
    x_float = x_float.reshape(io["x_shape"])
    write_cases(tmp / "cases.h", edge, x_float)

    codes = dict(C_API_DTYPES)
    lib = tmp / "lib"
    objs = build_library(lib, tmp / "obj")
    outputs = {lang: build_and_run(lib, objs, MAIN, prefix, tmp / f"build-{lang}", lang) for lang in LANGS}
    assert outputs["c"] == outputs["c++"]
    rows = parse(outputs["c"])

    # the macros are the ONNX model's
    assert rows["api"] == [["2"]]
    assert rows["dtype"] == [[str(codes[ONNX_TO_SUFFIX[io["x_type"]]]), str(codes[ONNX_TO_SUFFIX[io["y_type"]]])]]
    assert rows["in_shape"] == [[str(d) for d in io["x_shape"]]]
    assert rows["out_shape"] == [[str(d) for d in io["y_shape"]]]
    for tag, key in (("in_quant", "xq"), ("out_quant", "yq")):
        (printed,) = rows[tag]
        q = io[key]
        assert int(printed[0]) == q["axis"]
        want = [f"{int(s):08x}:{int(z)}" for s, z in zip(q["scale"].view(np.uint32), q["zero"])]
        assert printed[1:] == want, (tag, printed, want)

    # the generic helpers round like TFLite
    assert len(rows["qs8"]) == len(PARAMS)
    for p, (scale, z8, zu8) in enumerate(PARAMS):
        assert [int(v) for v in rows["qs8"][p]] == tflite_quantize(edge, scale, z8, -128, 127).tolist(), scale
        assert [int(v) for v in rows["qu8"][p]] == tflite_quantize(edge, scale, zu8, 0, 255).tolist(), scale
        assert floats(rows["ds8"][p]).tobytes() == tflite_dequantize(np.arange(-128, 128), scale, z8).tobytes()
        assert floats(rows["du8"][p]).tobytes() == tflite_dequantize(np.arange(256), scale, zu8).tobytes()

    # quantize_input0 -> the model -> dequantize_output0
    xq = np.array([int(v) for v in rows["xq"][0]])
    want_xq = per_channel(x_float, io["xq"], lambda v, s, z: tflite_quantize(v, s, int(z), lo, hi))
    assert xq.tolist() == want_xq.tolist()
    assert len(set(xq.tolist())) > 10 and {lo, hi} <= set(xq.tolist())  # saturated at both ends too
    sim = simulate(graph, sched, {io["x"]: xq.astype(x_dtype).reshape(io["x_shape"])}).outputs[io["y"]]
    assert [int(v) for v in rows["yq"][0]] == sim.reshape(-1).astype(np.int64).tolist()
    want_y = per_channel(sim, io["yq"], lambda v, s, z: tflite_dequantize(v, s, int(z)))
    assert floats(rows["y"][0]).tobytes() == want_y.astype(np.float32).tobytes()


# ----- the tests ---------------------------------------------------------------------------
def test_dtype_codes_are_pinned():
    """<PREFIX>_DTYPE_* codes are API: 1 + the dtype's place in ir.DType (API 1's values)."""
    assert C_API_DTYPES == [("F32", 1), ("S8", 2), ("U8", 3), ("S32", 4), ("S64", 5), ("B8", 6),
                            ("U32", 7), ("S16", 8)]


def qdq_model(dtype: int, per_axis: bool) -> onnx.ModelProto:
    """x (int8/uint8 [2, 4, 16]) -> DequantizeLinear -> Relu -> QuantizeLinear -> y: quantized
    I/O, per tensor or on axis 1, negative zero points for int8."""
    np_type = np.int8 if dtype == TensorProto.INT8 else np.uint8
    if per_axis:
        s_in, s_out = np.array([0.1, 0.2, 0.3, 0.05], np.float32), np.array([0.05, 0.1, 0.15, 0.025], np.float32)
        z_in = np.array([0, 5, -7, 3] if np_type == np.int8 else [0, 128, 250, 3], np_type)
        z_out = np.array([-128, -100, -120, -128] if np_type == np.int8 else [0, 10, 0, 5], np_type)
    else:
        s_in, s_out = np.float32(0.1), np.float32(0.05)
        z_in, z_out = np.asarray(-3 if np_type == np.int8 else 130, np_type), np.asarray(-128 if np_type == np.int8 else 2, np_type)
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in
             (("s_in", s_in), ("z_in", z_in), ("s_out", s_out), ("z_out", z_out))]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s_in", "z_in"], ["xf"], name="dq", axis=1),
             helper.make_node("Relu", ["xf"], ["r"], name="relu"),
             helper.make_node("QuantizeLinear", ["r", "s_out", "z_out"], ["y"], name="q", axis=1)]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", dtype, [2, 4, 16])],
                              [helper.make_tensor_value_info("y", dtype, [2, 4, 16])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.c
@needs_host
@pytest.mark.parametrize("dtype,per_axis", [(TensorProto.INT8, False), (TensorProto.UINT8, False),
                                            (TensorProto.INT8, True), (TensorProto.UINT8, True)],
                         ids=["s8", "u8", "s8-per-axis", "u8-per-axis"])
def test_small_quantized_io_models(dtype, per_axis, tmp_path):
    path = tmp_path / "qdq.onnx"
    onnx.save(qdq_model(dtype, per_axis), path)
    check_api(path, tmp_path, prefix="net")
    header = (tmp_path / "lib" / "net.h").read_text()
    # per axis: no scalar macros to misuse, arrays instead
    assert ("NET_INPUT0_SCALE " in header) == (not per_axis)
    assert ("NET_INPUT0_SCALES " in header) == per_axis


@pytest.mark.c
@pytest.mark.shared
@needs_host
def test_ad01_int8_api(tmp_path):
    """The anomaly-detection autoencoder: int8 [1, 640] in and out."""
    check_api(model_path(MODELS["ad"][0]), tmp_path, seed=1)


FLOAT_MAIN = r"""
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include "model.h"
#include "cases.h"

static float x[MODEL_INPUT0_SIZE];
static float y[MODEL_OUTPUT0_SIZE];

int main(void)
{
    unsigned i;
#if defined(MODEL_INPUT0_QUANT_AXIS) || defined(MODEL_OUTPUT0_QUANT_AXIS)
#error "a float input/output has quantization macros"
#endif
    if (MODEL_INPUT0_DTYPE != MODEL_DTYPE_F32 || MODEL_OUTPUT0_DTYPE != MODEL_DTYPE_F32) return 5;
    memcpy(x, input_bits, sizeof x);
    if (model_run(x, y) != MODEL_OK) return 4;
    printf("y");
    for (i = 0; i < MODEL_OUTPUT0_SIZE; ++i) {
        uint32_t b;
        memcpy(&b, &y[i], sizeof b);
        printf(" %08lx", (unsigned long)b);
    }
    printf("\n");
    return 0;
}
"""


@pytest.mark.c
@needs_host
def test_float_io_model_quantized_inside_keeps_a_float_api(tmp_path):
    """x (float) -> Q -> DQ -> LayerNormalization -> Q -> DQ -> Relu -> Q -> DQ -> y (float):
    model_run takes and gives floats; the edge Q/DQ run inside model.c."""
    path = tmp_path / "island.onnx"
    onnx.save(island_model(), path)
    result = run(path, Options(output=tmp_path / "lib", format="library"))
    header = (tmp_path / "lib" / "model.h").read_text()
    assert "int model_run(const float *io_x, float *io_y);" in header
    assert "_quantize" not in header and "_SCALE" not in header
    body = (tmp_path / "lib" / "model.c").read_text()
    assert "o2m_quantize_away_s8(" in body and "o2m_dequantize_s8(" in body
    x = np.random.default_rng(5).normal(0, 2, (2, 16)).astype(np.float32)
    (tmp_path / "cases.h").write_text(f"static const uint32_t input_bits[] = {{ {words(x.reshape(-1))} }};\n")
    objs = build_library(tmp_path / "lib", tmp_path / "obj")
    out = {lang: build_and_run(tmp_path / "lib", objs, FLOAT_MAIN, "model", tmp_path / f"build-{lang}", lang)
           for lang in LANGS}
    assert out["c"] == out["c++"]
    want = simulate(result.graph, result.schedule, {"x": x}).outputs["y"]
    assert floats(parse(out["c"])["y"][0]).tobytes() == want.astype(np.float32).tobytes()


@pytest.mark.shared
def test_mcunet_float_io_keeps_a_float_api(tmp_path):
    """MCUNet's QDQ export: float in, float out, int8 inside (its Q and DQ are graph nodes)."""
    result = run(model_path(MODELS["mcunet"][0]), Options(output=tmp_path / "lib", format="library"))
    graph = result.graph
    header = (tmp_path / "lib" / "model.h").read_text()
    assert "#define MODEL_INPUT0_TYPE float" in header and "#define MODEL_OUTPUT0_TYPE float" in header
    assert "_quantize" not in header and "_QUANT_AXIS" not in header
    first = next(n for n in graph.nodes if graph.inputs[0] in n.inputs)
    last = next(n for n in graph.nodes if graph.outputs[0] in n.outputs)
    assert (first.op_type, last.op_type) == ("QuantizeLinear", "DequantizeLinear")
