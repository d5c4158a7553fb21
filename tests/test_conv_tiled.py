"""The register-tiled float convs (runtime_c/o2m_conv.c, o2m_conv2d_tiled_f32 and
o2m_conv2d_depthwise_tiled_f32) against a float64 reference and against the portable kernel.

One C program holds seeded random cases (channel counts that leave a tail of 1-3 output
channels, 3x3 at strides 1, 2 and 3, 1x1 at strides 1 and 2 with and without pads, other
kernels, dilation, groups, batch 2, every activation; depthwise 3x3 at column strides 1, 2, 3
and 2x2..7x7 windows, multipliers 1 and 2, dilation); it runs each case through
o2m_conv2d_f32 and the tiled kernel and prints both outputs and O2M_MAC_FUSED.
Under QEMU mps2-an386 (Cortex-M4F: O2M_MAC is VFMA, one rounding per multiply-add, so
the tiled outputs may differ from the portable ones in the last bits: compared with the
float64 reference) and on the host (no fused multiply-add: the same bits as the portable
kernel, which sums in the same order).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

RUNTIME = Path(__file__).resolve().parents[1] / "runtime_c"
SOURCES = ("o2m_conv.c",)
HEADERS = ("o2m_common.h", "o2m_internal.h", "o2m_conv.h")
HAVE_HOST = shutil.which("gcc") is not None and shutil.which("make") is not None
HAVE_QEMU = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None
ACTS = {0: None, 1: (0.0, np.inf), 2: (0.0, 6.0), 3: (-0.5, 0.7)}  # O2M_ACT_* kind -> clamp


def reference(x, w, b, stride, dil, pads, groups, act) -> np.ndarray:
    """float64 grouped convolution, NCHW / OIHW, pads (top, left, bottom, right), then the clamp."""
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    oh = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    xp = np.zeros((n, c, h + pads[0] + pads[2] + stride[0] * 2 + dil[0] * kh,
                   wd + pads[1] + pads[3] + stride[1] * 2 + dil[1] * kw))
    xp[:, :, pads[0]:pads[0] + h, pads[1]:pads[1] + wd] = x
    out = np.zeros((n, k, oh, ow))
    kg = k // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg, i * dil[0]:i * dil[0] + stride[0] * (oh - 1) + 1:stride[0],
                           j * dil[1]:j * dil[1] + stride[1] * (ow - 1) + 1:stride[1]]
                out[:, g * kg:(g + 1) * kg] += np.einsum("nchw,kc->nkhw", patch,
                                                         w[g * kg:(g + 1) * kg, :, i, j].astype(np.float64))
    out += b.reshape(1, -1, 1, 1)
    if ACTS[act] is not None:
        out = np.clip(out, *ACTS[act])
    return out


FORMS = ("3x3s1", "3x3s2", "3x3s3", "1x1s1", "1x1s2", "1x1pad", "any", "dilated", "grouped",
         "dw3x3s1", "dw3x3s2", "dw3x3s3", "dwany")


def make_case(rng, form: str) -> dict:
    groups = 1
    dil = (1, 1)
    depthwise = form.startswith("dw")
    if depthwise:
        form_k = form[2:]
        c_in = int(rng.integers(1, 6))
        mult = int(rng.integers(1, 3))
        if form_k.startswith("3x3"):
            k, stride = (3, 3), (int(rng.integers(1, 3)), int(form_k[-1]))
        else:
            side = int(rng.choice([2, 5, 7]))
            k, stride = (side, int(rng.choice([1, 3, side]))), (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
            dil = (1, int(rng.integers(1, 3)))
        pads = tuple(int(rng.integers(0, kk)) for kk in (k[0], k[1], k[0], k[1]))
        groups, cin_g, cout_g = c_in, 1, mult
    elif form.startswith("3x3"):
        k = (3, 3)
        s = int(form[-1])
        stride = (int(rng.integers(1, 3)), s)
        pads = tuple(int(v) for v in rng.integers(0, 2, 4))
    elif form in ("1x1s1", "1x1s2"):
        k, pads = (1, 1), (0, 0, 0, 0)
        stride = (int(form[-1]),) * 2
    elif form == "1x1pad":
        k, stride, pads = (1, 1), (1, 1), (1, 1, 0, 1)
    else:
        k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pads = tuple(int(rng.integers(0, kk)) for kk in (k[0], k[1], k[0], k[1]))
        if form == "dilated":
            dil = (int(rng.integers(1, 3)), 2)
        if form == "grouped":
            groups = int(rng.choice([2, 3]))
    if not depthwise:
        cin_g = int(rng.integers(1, 7))
        cout_g = int(rng.integers(1, 10))
    c_in, c_out = cin_g * groups, cout_g * groups
    h = int(rng.integers(max(1, dil[0] * (k[0] - 1) + 1 - pads[0] - pads[2]), 12))
    wd = int(rng.integers(max(1, dil[1] * (k[1] - 1) + 1 - pads[1] - pads[3]), 20 if depthwise else 14))
    n = 2 if rng.integers(0, 4) == 0 else 1
    act = int(rng.integers(0, 4))
    x = rng.uniform(-1, 1, (n, c_in, h, wd)).astype(np.float32)
    w = rng.uniform(-1, 1, (c_out, cin_g, *k)).astype(np.float32)
    b = rng.uniform(-1, 1, c_out).astype(np.float32)
    y = reference(x, w, b, stride, dil, pads, groups, act)
    return {"form": form, "x": x, "w": w, "b": b, "stride": stride, "dil": dil, "pads": pads,
            "groups": groups, "act": act, "y": y}


def cases(seed: int = 14, per_form: int = 5) -> list[dict]:
    rng = np.random.default_rng(seed)
    made = [make_case(rng, form) for form in FORMS for _ in range(per_form)]
    # one of ResNet-8's 3x3 layers (shape, pads), every tile interior or border
    made.append(make_case_fixed(rng, c_in=16, c_out=16, hw=32, k=3, stride=1, pads=(1, 1, 1, 1)))
    made.append(make_case_fixed(rng, c_in=8, c_out=8, hw=20, k=3, stride=1, pads=(1, 1, 1, 1), groups=8))
    return [c for c in made if c["y"].size > 0]


def make_case_fixed(rng, c_in, c_out, hw, k, stride, pads, groups=1) -> dict:
    x = rng.uniform(-1, 1, (1, c_in, hw, hw)).astype(np.float32)
    w = rng.uniform(-1, 1, (c_out, c_in // groups, k, k)).astype(np.float32)
    b = rng.uniform(-1, 1, c_out).astype(np.float32)
    y = reference(x, w, b, (stride, stride), (1, 1), pads, groups, 1)
    return {"form": "dwfixed" if groups > 1 else "resnet", "x": x, "w": w, "b": b, "stride": (stride, stride),
            "dil": (1, 1), "pads": pads, "groups": groups, "act": 1, "y": y}


def _floats(name: str, values) -> str:
    values = np.asarray(values, np.float32).reshape(-1)
    return f"static const float {name}[{values.size}] = {{{', '.join(f'{float(v)!r}f' for v in values)}}};"


def program(all_cases: list[dict]) -> str:
    """main.c: every case through both kernels; prints port_<i>, tiled_<i> and `fused`."""
    decls, body = [], []
    y_max = max(c["y"].size for c in all_cases)
    for i, c in enumerate(all_cases):
        n, c_in, h, wd = c["x"].shape
        c_out, _, kh, kw = c["w"].shape
        _, _, oh, ow = c["y"].shape
        decls += [_floats(f"x{i}", c["x"]), _floats(f"w{i}", c["w"]), _floats(f"b{i}", c["b"])]
        lo, hi = ACTS[c["act"]] if c["act"] == 3 else (0.0, 0.0)
        fn = "o2m_conv2d_depthwise_tiled_f32" if c["form"].startswith("dw") else "o2m_conv2d_tiled_f32"
        fields = [n, c_in, h, wd, c_out, oh, ow, kh, kw, *c["stride"], *c["dil"], c["pads"][0], c["pads"][1],
                  c["groups"]]
        body.append(f"""    {{
        static const o2m_conv2d_params p = {{{', '.join(map(str, fields))}, {{{c['act']}, {lo!r}f, {hi!r}f}}}};
        o2m_conv2d_f32(&p, x{i}, w{i}, b{i}, y);
        o2m_out_f32("port_{i}", y, {c['y'].size}u);
        {fn}(&p, x{i}, w{i}, b{i}, y);
        o2m_out_f32("tiled_{i}", y, {c['y'].size}u);
    }}""")
    return "\n".join([
        '#include "o2m_conv.h"', '#include "o2m_internal.h"', '#include "o2m_io.h"', *decls,
        f"static float y[{y_max}];",
        "int main(void)", "{", "    const int32_t fused = O2M_MAC_FUSED;", *body,
        '    o2m_out_s32("fused", &fused, 1u);', "    o2m_done();", "    return 0;", "}", ""])


def build_program(tmp: Path, target: str, all_cases: list[dict]) -> Path:
    from onnx2mcu.codegen.board_project import write_board_files

    for name in SOURCES + HEADERS:
        shutil.copy2(RUNTIME / name, tmp / name)
    (tmp / "main.c").write_text(program(all_cases))
    write_board_files(target, tmp, ["main.c", *SOURCES])
    return tmp


def check(outputs: dict, all_cases: list[dict], fused: bool) -> None:
    assert int(outputs["fused"][0]) == int(fused)
    differ = 0
    for i, c in enumerate(all_cases):
        ref = c["y"].reshape(-1)
        tiled, port = outputs[f"tiled_{i}"], outputs[f"port_{i}"]
        scale = max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(tiled, ref, rtol=1e-5, atol=1e-5 * scale, err_msg=f"case {i} ({c['form']})")
        if fused:
            differ += int(np.any(tiled != port))
        else:  # same order, same roundings: the portable kernel's bits
            np.testing.assert_array_equal(tiled, port, err_msg=f"case {i} ({c['form']})")
    if fused:  # the fused multiply-adds really ran (they round differently somewhere)
        assert differ > 0


@pytest.fixture(scope="module")
def random_cases():
    return cases()


def test_cases_cover_the_forms(random_cases):
    """Every tile of the kernel runs: 3x3 at column strides 1, 2, 3, 1x1 at 1 and 2 (and with
    pads, whose rows fall outside), channel tails, groups, batch 2, all activations."""
    forms = {c["form"] for c in random_cases}
    assert forms >= set(FORMS)
    assert {c["w"].shape[0] % 4 for c in random_cases} == {0, 1, 2, 3}
    assert any(c["x"].shape[0] == 2 for c in random_cases)
    assert {c["act"] for c in random_cases} == {0, 1, 2, 3}
    assert any(c["y"].shape[3] >= 4 for c in random_cases if c["form"] == "3x3s2")
    assert any(c["y"].shape[3] >= 6 for c in random_cases if c["form"] == "dw3x3s1")
    assert any(c["y"].shape[3] >= 6 for c in random_cases if c["form"] == "dw3x3s2")
    assert any(c["w"].shape[0] > c["x"].shape[1] for c in random_cases if c["form"].startswith("dw"))
    assert any(c["w"].shape[2] >= 5 and c["dil"][1] > 1 for c in random_cases if c["form"] == "dwany")
    assert any(c["x"].shape[2] * c["x"].shape[3] % 4 and c["x"].shape[2] * c["x"].shape[3] > 4
               for c in random_cases if c["form"] == "1x1s1")


@pytest.mark.c
@pytest.mark.skipif(not HAVE_HOST, reason="gcc or make missing")
def test_tiled_equals_portable_on_the_host(tmp_path, random_cases):
    from onnx2mcu.simulator.run_c import build, run_host

    build(build_program(tmp_path, "host", random_cases), "host")
    result = run_host(tmp_path)
    assert result.exit_code == 0, result.stderr
    outputs = result.outputs()
    check(outputs, random_cases, fused=bool(outputs["fused"][0]))


@pytest.mark.c
@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_QEMU, reason="arm-none-eabi-gcc or qemu-system-arm missing")
def test_tiled_under_qemu_cortex_m4_uses_vfma(tmp_path, random_cases):
    from onnx2mcu.simulator.run_c import build, run_qemu

    elf = build(build_program(tmp_path, "mps2-an386", random_cases), "mps2-an386")
    disassembly = subprocess.run(["arm-none-eabi-objdump", "-d", str(tmp_path / "o2m_conv.o")],
                                 capture_output=True, text=True).stdout
    assert "vfma.f32" in disassembly
    result = run_qemu(tmp_path, "mps2-an386", count_instructions=False, elf=elf)
    assert result.exit_code == 0, result.stderr
    check(result.outputs(), random_cases, fused=True)
