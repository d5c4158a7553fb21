"""`compile --format library|cmake|zephyr` (codegen/formats.py) and the firmware C API
(codegen/templates/model.{h,c}.j2): built with gcc/g++ and arm-none-eabi-gcc/g++, through
CMake for the host and Cortex-M4; two instances with caller arenas equal the static one
and the simulator."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from onnx2mcu import api
from onnx2mcu.build import compile_model
from onnx2mcu.examples import build_example

STRICT_C = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-ffp-contract=off"]
STRICT_CXX = ["-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-ffp-contract=off"]
M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
HAVE_HOST = all(shutil.which(t) for t in ("gcc", "g++"))
HAVE_ARM = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-ar"))
HAVE_CMAKE = shutil.which("cmake") is not None
needs_host = pytest.mark.skipif(not HAVE_HOST, reason="gcc / g++ not installed")
needs_arm = pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc / g++ not installed")
needs_cmake = pytest.mark.skipif(not HAVE_CMAKE, reason="cmake not installed")
pytestmark = [pytest.mark.c]

# Two contexts on caller arenas, run interleaved, against the static model_run on the same
# inputs; error codes of model_init; outputs printed as float bits. Inputs are a formula that
# the test repeats in numpy for the simulator.
MAIN_CPP = r"""
#include <stdio.h>   /* the C headers: arm-none-eabi-g++ may come without libstdc++ */
#include <stdint.h>
#include <string.h>
#include "model.h"

static void fill(float *x, unsigned n, unsigned seed)
{
    for (unsigned i = 0; i < n; ++i) {
        x[i] = (float)((i * 37u + seed * 11u) % 101u) / 50.0f - 1.0f;
    }
}

alignas(8) static unsigned char arena_a[MODEL_ARENA_BYTES];
alignas(8) static unsigned char arena_b[MODEL_ARENA_BYTES + 8];
static MODEL_INPUT0_TYPE in_s[MODEL_INPUT0_SIZE];
static MODEL_OUTPUT0_TYPE out_s[2][MODEL_OUTPUT0_SIZE];

static void print(const char *tag, const void *data)
{
    const unsigned char *bytes = static_cast<const unsigned char *>(data);
    printf("%s", tag);
    for (unsigned i = 0; i < MODEL_OUTPUT0_SIZE; ++i) {
        uint32_t bits;
        memcpy(&bits, bytes + 4u * i, 4u);
        printf(" %08lx", (unsigned long)bits);
    }
    printf("\n");
}

int main()
{
    model_ctx a, b, bad;
    static const int shape[] = MODEL_INPUT0_SHAPE;
    if (MODEL_INPUT0_DTYPE != MODEL_DTYPE_F32 || sizeof shape / sizeof shape[0] != MODEL_INPUT0_NDIM) return 9;
    if (model_init(&a, arena_a, sizeof arena_a) != MODEL_OK) return 10;
    if (model_init(&b, arena_b, MODEL_ARENA_BYTES) != MODEL_OK) return 11;
    if (model_init(&bad, arena_a, sizeof arena_a - 1u) != MODEL_ERR_ARENA_TOO_SMALL) return 12;
    if (model_init(&bad, arena_b + 4, MODEL_ARENA_BYTES) != MODEL_ERR_ARENA_ALIGN) return 13;
    if (model_init(nullptr, arena_a, sizeof arena_a) != MODEL_ERR_NULL) return 14;
    if (model_input(&a, MODEL_NUM_INPUTS) != nullptr || model_output(&a, MODEL_NUM_OUTPUTS) != nullptr) return 15;
    fill(static_cast<MODEL_INPUT0_TYPE *>(model_input(&a, 0)), MODEL_INPUT0_SIZE, 1u);
    fill(static_cast<MODEL_INPUT0_TYPE *>(model_input(&b, 0)), MODEL_INPUT0_SIZE, 2u);
    if (model_invoke(&a) != MODEL_OK || model_invoke(&b) != MODEL_OK) return 16;
    for (unsigned k = 0; k < 2u; ++k) {
        fill(in_s, MODEL_INPUT0_SIZE, k + 1u);
        if (model_run(in_s, out_s[k]) != MODEL_OK) return 17;
    }
    if (memcmp(model_output(&a, 0), out_s[0], MODEL_OUTPUT0_BYTES) != 0) return 20;
    if (memcmp(model_output(&b, 0), out_s[1], MODEL_OUTPUT0_BYTES) != 0) return 21;
    if (memcmp(out_s[0], out_s[1], MODEL_OUTPUT0_BYTES) == 0) return 22;  /* inputs differ */
    print("A", model_output(&a, 0));
    print("B", model_output(&b, 0));
    return 0;
}
"""


def _fill(n: int, seed: int) -> np.ndarray:
    i = np.arange(n, dtype=np.uint64)
    return (((i * 37 + seed * 11) % 101).astype(np.float32) / np.float32(50.0) - np.float32(1.0)).astype(np.float32)


@pytest.fixture(scope="module")
def cnn():
    return build_example("cnn")


@pytest.fixture(scope="module")
def expected(cnn) -> dict[str, np.ndarray]:
    """The simulator's outputs for the two instances' inputs."""
    graph = api.load(cnn)
    name = graph.inputs[0]
    shape = graph.tensors[name].shape
    out = {}
    for tag, seed in (("A", 1), ("B", 2)):
        values = {name: _fill(int(np.prod(shape)), seed).reshape(shape)}
        sim = api.simulate(cnn, inputs=values, check_onnxruntime=False)
        out[tag] = np.asarray(sim.result.outputs[graph.outputs[0]], np.float32).reshape(-1)
    return out


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, cnn):
    root = tmp_path_factory.mktemp("formats")
    dirs = {}
    for fmt in ("library", "cmake", "zephyr"):
        dirs[fmt] = compile_model(cnn, root / fmt, board="mps2-an386", fmt=fmt).out_dir
    (root / "main.cpp").write_text(MAIN_CPP)
    return root, dirs


def _run(cmd, cwd=None, env=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _check_printed(stdout: str, expected: dict[str, np.ndarray]) -> None:
    rows = {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line[:1] in "AB"}
    assert set(rows) == {"A", "B"}
    for tag, words in rows.items():
        got = np.array([int(w, 16) for w in words], np.uint32).view(np.float32)
        np.testing.assert_allclose(got, expected[tag], rtol=1e-4, atol=1e-6)


def test_library_has_only_what_a_firmware_needs(outputs):
    _, dirs = outputs
    lib = dirs["library"]
    names = {p.name for p in lib.iterdir()}
    assert {"model.c", "model.h", "model_weights.h", "README.md"} <= names
    assert not names & {"main.c", "Makefile", "startup.c", "board.ld", "o2m_io.c", "source.onnx"}
    kernels = sorted(n for n in names if n.startswith("o2m_") and n.endswith(".c"))
    assert kernels and "o2m_mcubert.c" not in kernels and "o2m_binary.c" not in kernels
    readme = (lib / "README.md").read_text()
    for name in kernels:
        assert f"`{name}`" in readme
    for name in ("o2m_mcubert.c", "o2m_binary.c", "o2m_adder.c"):
        assert name not in readme


def test_header_is_a_versioned_c_and_cpp_api(outputs):
    header = (outputs[1]["library"] / "model.h").read_text()
    for text in ('extern "C" {', "#define MODEL_API_VERSION 2", "#define MODEL_ONNX2MCU_VERSION",
                 "#define MODEL_INPUT0_SHAPE { 1, 3, 32, 32 }", "#define MODEL_INPUT0_DIM1 3",
                 "#define MODEL_INPUT0_DTYPE MODEL_DTYPE_F32", "#define MODEL_OUTPUT0_TYPE float",
                 "int model_init(model_ctx *ctx, void *arena, size_t arena_bytes);",
                 "MODEL_ARENA_SECTION", "MODEL_ARENA_ALIGN"):
        assert text in header, text


@needs_host
def test_library_with_gcc_and_gxx_two_instances(outputs, expected):
    root, dirs = outputs
    lib, build = dirs["library"], root / "host"
    build.mkdir()
    objs = []
    for src in sorted(lib.glob("*.c")):
        obj = build / (src.stem + ".o")
        _run(["gcc", *STRICT_C, "-c", src, "-o", obj])
        objs.append(obj)
    _run(["g++", *STRICT_CXX, f"-I{lib}", "-c", root / "main.cpp", "-o", build / "main.o"])
    _run(["g++", build / "main.o", *objs, "-lm", "-o", build / "app"])
    _check_printed(_run([build / "app"]).stdout, expected)


@needs_arm
def test_library_with_arm_none_eabi_gcc_and_gxx(outputs):
    root, dirs = outputs
    lib, build = dirs["library"], root / "arm"
    build.mkdir()
    objs = []
    for src in sorted(lib.glob("*.c")):
        obj = build / (src.stem + ".o")
        _run(["arm-none-eabi-gcc", *M4, *STRICT_C, "-ffunction-sections", "-fdata-sections", "-c", src, "-o", obj])
        objs.append(obj)
    _run(["arm-none-eabi-ar", "rcs", build / "libmodel.a", *objs])
    _run(["arm-none-eabi-g++", *M4, *STRICT_CXX, "-fno-exceptions", "-fno-rtti", f"-I{lib}", "-c",
          root / "main.cpp", "-o", build / "main.o"])
    # linked by the C driver: the C++ code needs no libstdc++ (not always installed for arm-none-eabi)
    _run(["arm-none-eabi-gcc", *M4, "--specs=nosys.specs", "-Wl,--gc-sections", build / "main.o",
          build / "libmodel.a", "-lm", "-o", build / "app.elf"])
    header = _run(["arm-none-eabi-readelf", "-h", build / "app.elf"]).stdout
    assert "ARM" in header and "EXEC" in header
    # the static arena goes where MODEL_ARENA_SECTION says, aligned as MODEL_ARENA_ALIGN says
    placed = build / "placed.o"
    _run(["arm-none-eabi-gcc", *M4, *STRICT_C, '-DMODEL_ARENA_SECTION=".sram2"', "-DMODEL_ARENA_ALIGN=32",
          "-c", lib / "model.c", "-o", placed])
    sections = _run(["arm-none-eabi-readelf", "-SW", placed]).stdout
    line = next(ln for ln in sections.splitlines() if " .sram2 " in ln)
    fields = line.split("]", 1)[1].split()
    assert int(fields[4], 16) == 196608 and fields[-1] == "32", line  # size, alignment
    no_static = build / "nostatic.o"
    _run(["arm-none-eabi-gcc", *M4, *STRICT_C, "-DMODEL_NO_STATIC_ARENA", "-c", lib / "model.c", "-o", no_static])
    assert int(_run(["arm-none-eabi-size", "-A", no_static]).stdout.split(".bss")[1].split()[0]) == 0


def _cmake_app(root: Path, lib: Path, name: str) -> Path:
    app = root / f"app_{name}"
    app.mkdir()
    shutil.copy(root / "main.cpp", app / "main.cpp")
    (app / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(app C CXX)\n"
        f"add_subdirectory({lib.as_posix()} model)\n"
        "add_executable(app main.cpp)\n"
        # linked as C: the C++ main needs no libstdc++ (not always installed for arm-none-eabi)
        "set_target_properties(app PROPERTIES CXX_STANDARD 11 CXX_STANDARD_REQUIRED ON LINKER_LANGUAGE C)\n"
        "target_link_libraries(app PRIVATE onnx2mcu::model)\n")
    return app


@needs_cmake
@needs_host
@pytest.mark.parametrize("fmt", ["cmake", "zephyr"])
def test_cmake_target_for_the_host(outputs, expected, fmt):
    root, dirs = outputs
    app = _cmake_app(root, dirs[fmt], f"host_{fmt}")
    build = app / "build"
    _run(["cmake", "-S", app, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
          "-DCMAKE_C_FLAGS=-Wall -Wextra -Werror -pedantic", "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror -pedantic"])
    _run(["cmake", "--build", build, "-j2"])
    _check_printed(_run([build / "app"]).stdout, expected)


@needs_cmake
@needs_arm
@pytest.mark.parametrize("fmt", ["cmake", "zephyr"])
def test_cmake_target_for_cortex_m4(outputs, fmt):
    root, dirs = outputs
    lib = dirs[fmt]
    app = _cmake_app(root, lib, f"m4_{fmt}")
    build = app / "build"
    # warnings through CFLAGS: a -DCMAKE_C_FLAGS would replace the toolchain file's CPU flags
    env = dict(os.environ, CFLAGS="-Wall -Wextra -Werror -pedantic",
               CXXFLAGS="-Wall -Wextra -Werror -pedantic -fno-exceptions -fno-rtti")
    _run(["cmake", "-S", app, "-B", build, f"-DCMAKE_TOOLCHAIN_FILE={lib / 'arm-none-eabi.cmake'}",
          "-DCMAKE_BUILD_TYPE=Release", "-DMODEL_ARENA_SECTION=.sram2"], env=env)
    _run(["cmake", "--build", build, "-j2"])
    elf = build / "app"
    attrs = _run(["arm-none-eabi-readelf", "-hA", elf]).stdout
    assert "ARM" in attrs and "Tag_CPU_name: \"7E-M\"" in attrs and "Tag_ABI_VFP_args: VFP registers" in attrs
    sections = _run(["arm-none-eabi-readelf", "-SW", build / "model" / "libmodel.a"]).stdout
    assert ".sram2" in sections


def test_zephyr_module_files(outputs):
    lib = outputs[1]["zephyr"]
    module = yaml.safe_load((lib / "zephyr" / "module.yml").read_text())
    assert module["build"] == {"cmake": ".", "kconfig": "Kconfig"}
    kconfig = (lib / "Kconfig").read_text()
    assert "config ONNX2MCU_MODEL\n" in kconfig and "config ONNX2MCU_MODEL_ARENA_SECTION" in kconfig
    cmake = (lib / "CMakeLists.txt").read_text()
    assert "zephyr_library_named(onnx2mcu_model)" in cmake and "if(NOT CONFIG_ONNX2MCU_MODEL)" in cmake
