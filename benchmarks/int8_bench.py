"""int8 speed and RAM benchmark (issue 14): the five int8 models of ../shared/models on a
Cortex-M4 (QEMU mps2-an386), our C with the portable kernels and with the arm-dsp fast
kernels, beside TFLite Micro with CMSIS-NN and with its reference kernels and TinyEngine's
peak RAM (the recorded figures of ../shared/anchors/README.md, same plugin, same machine).

Counts one inference: the instructions between the harness's o2m_mark_begin/o2m_mark_end
around model_run (the anchors count Invoke() only; model_run adds the copy of the input in
and of the output out, a few hundred instructions).  Every run is also checked: the C's
outputs equal the simulator's bit for bit (`onnx2mcu run` exits 1 otherwise).

    python benchmarks/int8_bench.py [--out benchmarks/int8.md] [--models kws,ad]
    python benchmarks/int8_bench.py --float     (the float section: benchmarks/float_conv_bench.py)

Each part rewrites its own section of the file and keeps the other's.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BOARD = "mps2-an386"
FLOAT_SECTION = "## Float conv"  # float_conv_bench.SECTION
# key: (label, model, TFLM + CMSIS-NN instructions, TFLM reference instructions, TFLM arena,
#       TFLM activation head, TinyEngine peak), figures from ../shared/anchors/README.md
MODELS = {
    "kws": ("KWS DS-CNN", "models/mlperf_tiny/kws_ref_model.onnx", 7_698_450, 43_041_496, 22_832, 16_000, 16_000),
    "vww": ("VWW MobileNetV1 96", "models/mlperf_tiny/vww_96_int8.onnx", 24_101_967, 100_238_819, 100_720, 73_728,
            55_296),
    "resnet": ("IC ResNet-8", "models/mlperf_tiny/pretrainedResnet_quant.onnx", 29_860_971, 107_401_346, 55_008,
               49_152, 49_152),
    "ad": ("AD autoencoder", "models/mlperf_tiny/ad01_int8.onnx", 582_971, 1_952_381, 3_024, 768, 768),
    "mcunet": ("MCUNet-VWW", "models/mcunet/mcunet_vww_qdq.onnx", 48_626_638, 189_129_535, 219_808, 161_472,
               89_600),
}
PATCHED = ("vww", "mcunet")  # issue 14's --patch auto bar: <= 0.7x TinyEngine's peak
FLOAT_IO = ("mcunet",)  # quantized inside with float I/O: also measured with --int8-io


def measure(model: Path, out: Path, kernels: tuple[str, ...], patch: str = "none", int8_io: bool = False) -> dict:
    """Compile for mps2-an386 with the given kernel preference, run under QEMU, check bit-exactness."""
    from onnx2mcu.graph_opt.pipeline import total_macs
    from onnx2mcu.pipeline import Options, run
    from onnx2mcu.runner import run_project_dir
    from onnx2mcu.targets import get_board

    board = dataclasses.replace(get_board(BOARD), kernels=kernels)
    result = run(model, Options(output=out, board=board, scheduler="greedy", force=True, patch=patch,
                                int8_io=int8_io))
    data = run_project_dir(str(out), "qemu", timeout=900)
    if not data["ok"]:
        raise SystemExit(f"{model}: the C's outputs differ from the simulator's ({kernels})")
    macs = total_macs(result.graph)
    return {"instructions": data["inference_instructions"], "arena": data["arena_bytes"],
            "flash": data["flash_bytes"], "ram": data["ram_bytes"], "macs": macs,
            "patch": result.optimization.get("patch")}


def patch_table(rows: list[dict]) -> str:
    head = ("| model | arena `--patch none` (B) | arena `--patch auto` (B) | TinyEngine peak (B) | auto / TinyEngine | "
            "chains | extra MACs | instructions none | instructions auto |")
    lines = [head, "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    variants = [(r, r["patched"], r["fast"], "") for r in rows]
    variants += [(r, r["io_patched"], r["io"], " (`--int8-io`)") for r in rows if "io_patched" in r]
    for r, p, base, tag in variants:
        section = p["patch"]
        chains = "; ".join(f"{len(c['layers'])} layers, {c['grid'][0]}x{c['grid'][1]} patches"
                           for c in section["chains"]) if section else "none (no chain lowers the peak)"
        extra = p["macs"] - base["macs"]
        lines.append(f"| {r['label']}{tag} | {base['arena']:,} | {p['arena']:,} | {r['tinyengine']:,} | "
                     f"{p['arena'] / r['tinyengine']:.2f}x | {chains} | {extra:+,} ({100 * extra / base['macs']:+.1f}%) | "
                     f"{base['instructions']:,} | {p['instructions']:,} |")
    return "\n".join(lines)


def kernels_used(project: Path) -> set[str]:
    import json

    report = json.loads((project / "report.json").read_text())
    return {n["kernel"] for n in report["precision"]["nodes"] if n.get("kernel")}


def table(rows: list[dict]) -> str:
    head = ("| model | ours portable | ours arm-dsp | TFLM + CMSIS-NN | TFLM reference | ours / CMSIS-NN | "
            "arena ours (B) | TFLM arena (activations) (B) | TinyEngine peak (B) | ELF flash ours (B) | "
            "ELF RAM ours (B) |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['portable']['instructions']:,} | {r['fast']['instructions']:,} | "
                     f"{r['cmsis']:,} | {r['ref']:,} | {r['fast']['instructions'] / r['cmsis']:.2f}x | "
                     f"{r['fast']['arena']:,} | {r['tflm_arena']:,} ({r['tflm_head']:,}) | {r['tinyengine']:,} | "
                     f"{r['fast']['flash']:,} | {r['fast']['ram']:,} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "int8.md"))
    parser.add_argument("--models", default=None, help=f"default: all ({','.join(MODELS)})")
    parser.add_argument("--float", action="store_true",
                        help="measure the float models instead (float conv before and after issue 14)")
    args = parser.parse_args(argv)
    if args.float:
        import float_conv_bench

        return float_conv_bench.main(["--out", args.out] + (["--models", args.models] if args.models else []))
    args.models = args.models or ",".join(MODELS)
    if not SHARED.exists():
        print(f"{SHARED} is absent: nothing to measure", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="int8-bench-") as tmp:
        for key in args.models.split(","):
            label, rel, cmsis, ref, tflm_arena, head, tiny = MODELS[key]
            row = {"label": label, "cmsis": cmsis, "ref": ref, "tflm_arena": tflm_arena, "tflm_head": head,
                   "tinyengine": tiny}
            for name, kernels in (("portable", ("portable",)), ("fast", ("arm-dsp", "portable"))):
                out = Path(tmp) / f"{key}-{name}"
                row[name] = measure(SHARED / rel, out, kernels)
                row[name]["kernels"] = kernels_used(out)
                print(f"{label:20s} {name:8s} {row[name]['instructions']:>12,} instructions", flush=True)
            if key in PATCHED:
                out = Path(tmp) / f"{key}-patch"
                row["patched"] = measure(SHARED / rel, out, ("arm-dsp", "portable"), patch="auto")
                print(f"{label:20s} patch    {row['patched']['instructions']:>12,} instructions, arena "
                      f"{row['patched']['arena']:,}", flush=True)
            if key in FLOAT_IO:  # also as TinyEngine takes it: int8 input and output (--int8-io)
                out = Path(tmp) / f"{key}-io"
                row["io"] = measure(SHARED / rel, Path(tmp) / f"{key}-io-none", ("arm-dsp", "portable"), int8_io=True)
                row["io_patched"] = measure(SHARED / rel, out, ("arm-dsp", "portable"), patch="auto", int8_io=True)
                print(f"{label:20s} int8-io  {row['io_patched']['instructions']:>12,} instructions, arena "
                      f"{row['io_patched']['arena']:,}", flush=True)
            assert not any(k.endswith("/arm-dsp") for k in row["portable"]["kernels"])
            assert any(k.endswith("/arm-dsp") for k in row["fast"]["kernels"])
            rows.append(row)
    from onnx2mcu.version import __version__

    at_bar = sum(r["fast"]["instructions"] <= r["cmsis"] for r in rows)
    below = sum(r["fast"]["instructions"] <= 0.8 * r["cmsis"] for r in rows)
    text = "\n".join([
        "# int8 benchmark: instructions per inference on a Cortex-M4 (QEMU mps2-an386)",
        "",
        f"Generated by `python benchmarks/int8_bench.py` (onnx2mcu {__version__}); do not edit by hand.",
        "",
        "Instructions of one inference (`model_run`, between the harness's markers), counted by",
        "simulator/qemu_plugin.c; TFLite Micro's figures are ../shared/anchors/README.md's (the same",
        "plugin around `Invoke()`).  Ours: `--scheduler greedy`, `--requant fixed`, -O2; *portable* =",
        "every node on the plain C99 kernels, *arm-dsp* = the board's preference (Conv, depthwise Conv and",
        "fully connected Gemm on runtime_c/o2m_s8_conv_dsp.c, the rest portable).  Every run's outputs",
        "equal the simulator's bit for bit (which equals TFLite Micro's, tests/test_int8_models.py).",
        "Arena: our activation arena with the fast kernels (their scratch only where it does not raise",
        "the peak, docs/ARCHITECTURE.md kernels); TFLite Micro's smallest arena that allocates (its",
        "activation part in brackets) and TinyEngine's peak (anchors). ELF flash/RAM: the arm-dsp build.",
        "",
        table(rows),
        "",
        f"At or below TFLite Micro + CMSIS-NN: {at_bar} of {len(rows)}; at or below 0.8x: {below}.",
        "",
    ])
    patched = [r for r in rows if "patched" in r]
    if patched:
        text += "\n".join([
            "## Patch-based inference (`--patch auto`)",
            "",
            "graph_opt/patch.py (MCUNetV2): an early chain of int8 convs runs patch by patch (halo",
            "recomputed), so its large feature maps never exist whole; the arm-dsp build as above, outputs",
            "equal to the simulator's (and to the unpatched model's) bit for bit.  *Extra MACs*: the halo's",
            "recomputation (OpDef.macs of the patched graph against the unpatched one).  MCUNet-VWW's float",
            "input (80x80x3 float32, 76,800 B) is in the arena at the first step, which bounds its peak from",
            "below; TinyEngine's figure is for an int8 input, which `--int8-io` gives (graph_opt/int8_io.py: the",
            "edge QuantizeLinear/DequantizeLinear run outside `model_run`, the C API takes and gives the int8",
            "tensors with their scales and zero points; the same integers, bit for bit).",
            "",
            patch_table(patched),
            "",
        ])
    out = Path(args.out)
    if out.exists() and FLOAT_SECTION in out.read_text():  # keep the float part (--float)
        text += "\n" + FLOAT_SECTION + out.read_text().split(FLOAT_SECTION, 1)[1]
    out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
